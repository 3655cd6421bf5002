import CLoomKernels
import LoomIR

/// One strided copy: the index space `shape` read from operand `operand` at `sourceOffset` with
/// `sourceStrides` and written at `targetOffset` with `targetStrides` (all in elements). Float
/// values go through `loom_strided_copy`; integer values (labels) through the same index arithmetic
/// in Swift.
struct StridedCopy {
    let operand: Int
    let shape: [Int64]
    let sourceOffset: Int64
    let sourceStrides: [Int64]
    let targetOffset: Int64
    let targetStrides: [Int64]

    init(operand: Int = 0, _ shape: [Int], from sourceOffset: Int, _ sourceStrides: [Int],
         to targetOffset: Int, _ targetStrides: [Int]) {
        self.operand = operand
        self.shape = shape.map(Int64.init)
        self.sourceOffset = Int64(sourceOffset)
        self.sourceStrides = sourceStrides.map(Int64.init)
        self.targetOffset = Int64(targetOffset)
        self.targetStrides = targetStrides.map(Int64.init)
    }

    func run(from x: TensorRef, into y: TensorRef) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        if x.type.dtype.isFloat {
            loom_strided_copy(Int32(shape.count), shape, x.floats, sourceOffset, sourceStrides, y.floats, targetOffset,
                              targetStrides)
            return
        }
        let strides = rowMajorStrides(shape.map(Int.init))
        for index in 0..<Int(count) {
            var (ox, oy, rest) = (Int(sourceOffset), Int(targetOffset), index)
            for axis in strides.indices {
                let c = rest / strides[axis]
                rest %= strides[axis]
                ox += c * Int(sourceStrides[axis])
                oy += c * Int(targetStrides[axis])
            }
            y.ints[oy] = x.ints[ox]
        }
    }
}

/// Data movement (permute, slice, concat, broadcast, patchify, unpatchify) as strided copies,
/// described once from the operand and result shapes (plans build the description when they are
/// loaded; the reference executor on every launch).
enum Layout {
    static func run(_ op: Op, _ x: [TensorRef], _ y: TensorRef) {
        for copy in copies(op, x.map(\.type), y.type) { copy.run(from: x[copy.operand], into: y) }
    }

    /// The copies that perform layout op `op` from operands of types `x` into a result of type `y`.
    static func copies(_ op: Op, _ x: [TensorType], _ y: TensorType) -> [StridedCopy] {
        let yStrides = rowMajorStrides(y.shape)
        switch op {
        case .permute(let perm):
            let strides = rowMajorStrides(x[0].shape)
            return [StridedCopy(y.shape, from: 0, perm.map { strides[$0] }, to: 0, yStrides)]
        case .slice(let axis, let start, _):
            let strides = rowMajorStrides(x[0].shape)
            return [StridedCopy(y.shape, from: start * strides[axis], strides, to: 0, yStrides)]
        case .concat(let axis):
            var offset = 0
            return x.enumerated().map { index, part in
                defer { offset += part.shape[axis] }
                return StridedCopy(operand: index, part.shape, from: 0, rowMajorStrides(part.shape),
                                   to: offset * yStrides[axis], yStrides)
            }
        case .broadcast:
            let strides = KernelLibrary.broadcastStrides(x[0].shape, to: y.shape).map { Int($0) }
            return [StridedCopy(y.shape, from: 0, strides, to: 0, yStrides)]
        case .patchify(let p):
            // [N, C, H, W] → [N, h·w, C·p·p]: index space (n, gh, gw, c, i, j).
            let (n, c, h, w) = (x[0].shape[0], x[0].shape[1], x[0].shape[2], x[0].shape[3])
            let space = [n, h / p, w / p, c, p, p]
            return [StridedCopy(space, from: 0, [c * h * w, p * w, p, h * w, w, 1], to: 0, rowMajorStrides(space))]
        case .unpatchify(let p, let gh, let gw):
            // [N, h·w, p·p·C] → [N, C, h·p, w·p]: index space (n, gh, gw, i, j, c).
            let n = x[0].shape[0], c = x[0].shape[2] / (p * p)
            let (h, w) = (gh * p, gw * p)
            let space = [n, gh, gw, p, p, c]
            return [StridedCopy(space, from: 0, rowMajorStrides(space), to: 0, [c * h * w, p * w, p, w, 1, h * w])]
        default:
            preconditionFailure("Layout: \(op.mnemonic) is not a layout op")
        }
    }
}
