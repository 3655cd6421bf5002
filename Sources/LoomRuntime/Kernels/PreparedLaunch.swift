import CLoomKernels
import LoomIR

extension KernelLibrary {
    /// One launch with every argument bound once: calling the result does the work without looking
    /// anything up again. Plans prepare all their launches when the executor is made, so a step
    /// neither dispatches on the op nor builds argument arrays (elementwise programs, strides and
    /// operand tables are made here, once).
    static func prepare(_ op: Op, _ x: [TensorRef], _ y: TensorRef, partition: LaunchPartition?,
                        packedWeight: UnsafePointer<Float>? = nil) -> () throws -> Void {
        switch op {
        case .fused(.elementwise(let program)):
            let launch = ElementwiseLaunch(program, x, y)
            return { launch.run() }
        case .slice, .permute, .concat, .broadcast:
            guard y.type.dtype.isFloat else { return { try launch(op, x, y, partition: partition) } }
            let copies = StridedCopies(op, x, y)
            return { copies.run() }
        case .fused(.linear(let activation)):
            let (input, weight, bias) = (x[0], x[1], x[2])
            return { linear(input, weight, bias, y, activation: activation, packedWeight: packedWeight, partition: partition) }
        default:
            return { try launch(op, x, y, partition: partition) }
        }
    }
}

/// The arguments of one `fused_elementwise` launch in the C kernel's form: the register program,
/// the output shape, each operand's broadcast strides ([operands × rank]) and its address.
final class ElementwiseLaunch {
    let instructions: [loom_ew_instruction]
    let shape: [Int64]
    let strides: [Int64]
    let pointers: [UnsafePointer<Float>?]
    let output: UnsafeMutablePointer<Float>
    let count: Int

    init(_ program: ElementwiseProgram, _ x: [TensorRef], _ y: TensorRef) {
        instructions = program.instructions.map { instruction -> loom_ew_instruction in
            switch instruction {
            case .unary(let f, let a):
                return loom_ew_instruction(kind: Int32(LOOM_EW_UNARY.rawValue), op: Int32(KernelLibrary.unaryCode(f).rawValue),
                                           a: Int32(a), b: 0, f0: 0, f1: 0)
            case .affine(let a, let scale, let shift):
                return loom_ew_instruction(kind: Int32(LOOM_EW_AFFINE.rawValue), op: 0, a: Int32(a), b: 0,
                                           f0: scale, f1: shift)
            case .binary(let f, let a, let b):
                return loom_ew_instruction(kind: Int32(LOOM_EW_BINARY.rawValue), op: Int32(KernelLibrary.binaryCode(f).rawValue),
                                           a: Int32(a), b: Int32(b), f0: 0, f1: 0)
            case .constant(let v):
                return loom_ew_instruction(kind: Int32(LOOM_EW_CONSTANT.rawValue), op: 0, a: 0, b: 0, f0: v, f1: 0)
            }
        }
        shape = y.shape.map(Int64.init)
        strides = x.flatMap { KernelLibrary.broadcastStrides($0.shape, to: y.shape) }
        pointers = x.map { UnsafePointer($0.floats) }
        output = y.floats
        count = y.count
    }

    func run() {
        guard count > 0 else { return }
        loom_elementwise(Int32(shape.count), shape, Int32(pointers.count), pointers, strides,
                         Int32(instructions.count), instructions, output)
    }
}

/// The strided copies of one float layout launch (slice, permute, concat, broadcast), with their
/// shapes and strides computed once.
final class StridedCopies {
    struct Copy {
        let shape: [Int64]
        let source: UnsafeMutablePointer<Float>
        let sourceOffset: Int64
        let sourceStrides: [Int64]
        let targetOffset: Int64
        let targetStrides: [Int64]
    }

    let copies: [Copy]
    let target: UnsafeMutablePointer<Float>

    init(_ op: Op, _ x: [TensorRef], _ y: TensorRef) {
        let strides = { (shape: [Int]) in rowMajorStrides(shape).map(Int64.init) }
        let yStrides = strides(y.shape)
        let shape = y.shape.map(Int64.init)
        target = y.floats
        switch op {
        case .slice(let axis, let start, _):
            let xs = strides(x[0].shape)
            copies = [Copy(shape: shape, source: x[0].floats, sourceOffset: Int64(start) * xs[axis], sourceStrides: xs,
                           targetOffset: 0, targetStrides: yStrides)]
        case .permute(let perm):
            let xs = strides(x[0].shape)
            copies = [Copy(shape: shape, source: x[0].floats, sourceOffset: 0, sourceStrides: perm.map { xs[$0] },
                           targetOffset: 0, targetStrides: yStrides)]
        case .broadcast:
            copies = [Copy(shape: shape, source: x[0].floats, sourceOffset: 0,
                           sourceStrides: KernelLibrary.broadcastStrides(x[0].shape, to: y.shape),
                           targetOffset: 0, targetStrides: yStrides)]
        case .concat(let axis):
            var offset: Int64 = 0
            copies = x.map { part in
                defer { offset += Int64(part.shape[axis]) }
                return Copy(shape: part.shape.map(Int64.init), source: part.floats, sourceOffset: 0,
                            sourceStrides: strides(part.shape), targetOffset: offset * yStrides[axis], targetStrides: yStrides)
            }
        default:
            preconditionFailure("StridedCopies: \(op.mnemonic) is not a layout copy")
        }
    }

    func run() {
        for c in copies where !c.shape.contains(0) {
            loom_strided_copy(Int32(c.shape.count), c.shape, c.source, c.sourceOffset, c.sourceStrides,
                              target, c.targetOffset, c.targetStrides)
        }
    }
}
