import CLoomKernels
import LoomIR

/// Data movement (permute, slice, concat, broadcast, patchify) as strided copies. Float values go
/// through `loom_strided_copy`; integer values (labels) through the same index arithmetic in Swift.
enum Layout {
    /// Copies index space `shape` from `x` (offset, strides) into `y` (offset, strides).
    static func copy(_ shape: [Int], from x: TensorRef, _ xOffset: Int, _ xStrides: [Int],
                     into y: TensorRef, _ yOffset: Int, _ yStrides: [Int]) {
        guard shape.reduce(1, *) > 0 else { return }
        if x.type.dtype.isFloat {
            let s = shape.map(Int64.init), sx = xStrides.map(Int64.init), sy = yStrides.map(Int64.init)
            loom_strided_copy(Int32(s.count), s, x.floats, Int64(xOffset), sx, y.floats, Int64(yOffset), sy)
            return
        }
        let strides = rowMajorStrides(shape)
        for index in 0..<shape.reduce(1, *) {
            var (ox, oy, rest) = (xOffset, yOffset, index)
            for axis in shape.indices {
                let c = rest / strides[axis]
                rest %= strides[axis]
                ox += c * xStrides[axis]
                oy += c * yStrides[axis]
            }
            y.ints[oy] = x.ints[ox]
        }
    }

    static func permute(_ x: TensorRef, perm: [Int], into y: TensorRef) {
        let strides = rowMajorStrides(x.shape)
        copy(y.shape, from: x, 0, perm.map { strides[$0] }, into: y, 0, rowMajorStrides(y.shape))
    }

    static func slice(_ x: TensorRef, axis: Int, start: Int, into y: TensorRef) {
        let strides = rowMajorStrides(x.shape)
        copy(y.shape, from: x, start * strides[axis], strides, into: y, 0, rowMajorStrides(y.shape))
    }

    static func concat(_ xs: [TensorRef], axis: Int, into y: TensorRef) {
        let yStrides = rowMajorStrides(y.shape)
        var offset = 0
        for x in xs {
            copy(x.shape, from: x, 0, rowMajorStrides(x.shape), into: y, offset * yStrides[axis], yStrides)
            offset += x.shape[axis]
        }
    }

    static func broadcast(_ x: TensorRef, into y: TensorRef) {
        let strides = KernelLibrary.broadcastStrides(x.shape, to: y.shape).map { Int($0) }
        copy(y.shape, from: x, 0, strides, into: y, 0, rowMajorStrides(y.shape))
    }

    /// [N, C, H, W] → [N, h·w, C·p·p]: index space (n, gh, gw, c, i, j).
    static func patchify(_ x: TensorRef, patch p: Int, into y: TensorRef) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let space = [n, h / p, w / p, c, p, p]
        copy(space, from: x, 0, [c * h * w, p * w, p, h * w, w, 1], into: y, 0, rowMajorStrides(space))
    }

    /// [N, h·w, p·p·C] → [N, C, h·p, w·p]: index space (n, gh, gw, i, j, c).
    static func unpatchify(_ x: TensorRef, patch p: Int, gridH gh: Int, gridW gw: Int, into y: TensorRef) {
        let n = x.shape[0], c = x.shape[2] / (p * p)
        let (h, w) = (gh * p, gw * p)
        let space = [n, gh, gw, p, p, c]
        copy(space, from: x, 0, rowMajorStrides(space), into: y, 0, [c * h * w, p * w, p, w, 1, h * w])
    }
}
