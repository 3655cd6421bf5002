import CLoomKernels
import LoomIR

/// Data movement (permute, slice, concat, broadcast, patchify) as strided copies. Float tensors go
/// through `loom_strided_copy`; integer tensors (labels) through the same index arithmetic in Swift.
enum Layout {
    /// Copies index space `shape` from `x` (offset, strides) into `y` (offset, strides).
    static func copy(_ shape: [Int], from x: HostTensor, _ xOffset: Int, _ xStrides: [Int],
                     into y: inout HostTensor, _ yOffset: Int, _ yStrides: [Int]) {
        guard shape.reduce(1, *) > 0 else { return }
        if x.dtype.isFloat {
            let s = shape.map(Int64.init), sx = xStrides.map(Int64.init), sy = yStrides.map(Int64.init)
            x.floats.withUnsafeBufferPointer { px in
                y.floats.withUnsafeMutableBufferPointer { py in
                    loom_strided_copy(Int32(s.count), s, px.baseAddress, Int64(xOffset), sx,
                                      py.baseAddress, Int64(yOffset), sy)
                }
            }
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

    static func empty(_ dtype: DType, _ shape: [Int]) -> HostTensor { HostTensor(zeros: TensorType(dtype, shape)) }

    static func permute(_ x: HostTensor, perm: [Int]) -> HostTensor {
        let shape = perm.map { x.shape[$0] }
        let strides = rowMajorStrides(x.shape)
        var y = empty(x.dtype, shape)
        copy(shape, from: x, 0, perm.map { strides[$0] }, into: &y, 0, rowMajorStrides(shape))
        return y
    }

    static func slice(_ x: HostTensor, axis: Int, start: Int, end: Int) -> HostTensor {
        var shape = x.shape
        shape[axis] = end - start
        let strides = rowMajorStrides(x.shape)
        var y = empty(x.dtype, shape)
        copy(shape, from: x, start * strides[axis], strides, into: &y, 0, rowMajorStrides(shape))
        return y
    }

    static func concat(_ xs: [HostTensor], axis: Int, outShape: [Int]) -> HostTensor {
        var y = empty(xs[0].dtype, outShape)
        let yStrides = rowMajorStrides(outShape)
        var offset = 0
        for x in xs {
            copy(x.shape, from: x, 0, rowMajorStrides(x.shape), into: &y, offset * yStrides[axis], yStrides)
            offset += x.shape[axis]
        }
        return y
    }

    static func broadcast(_ x: HostTensor, to shape: [Int]) -> HostTensor {
        var y = empty(x.dtype, shape)
        let strides = OpKernels.broadcastStrides(x.shape, to: shape).map { Int($0) }
        copy(shape, from: x, 0, strides, into: &y, 0, rowMajorStrides(shape))
        return y
    }

    /// [N, C, H, W] → [N, h·w, C·p·p]: index space (n, gh, gw, c, i, j).
    static func patchify(_ x: HostTensor, patch p: Int) -> HostTensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (gh, gw) = (h / p, w / p)
        let space = [n, gh, gw, c, p, p]
        let xs = [c * h * w, p * w, p, h * w, w, 1]
        var y = empty(.f32, [n, gh * gw, c * p * p])
        copy(space, from: x, 0, xs, into: &y, 0, rowMajorStrides(space))
        return y
    }

    /// [N, h·w, p·p·C] → [N, C, h·p, w·p]: index space (n, gh, gw, i, j, c).
    static func unpatchify(_ x: HostTensor, patch p: Int, gridH gh: Int, gridW gw: Int) -> HostTensor {
        let n = x.shape[0], c = x.shape[2] / (p * p)
        let (h, w) = (gh * p, gw * p)
        let space = [n, gh, gw, p, p, c]
        let ys = [c * h * w, p * w, p, w, 1, h * w]
        var y = empty(.f32, [n, c, h, w])
        copy(space, from: x, 0, rowMajorStrides(space), into: &y, 0, ys)
        return y
    }
}
