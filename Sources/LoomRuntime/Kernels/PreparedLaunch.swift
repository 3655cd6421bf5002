import CLoomKernels
import LoomDistributed
import LoomIR

extension KernelLibrary {
    /// One launch with every argument bound once: calling the result does the work without looking
    /// anything up again. Plans prepare all their launches when the executor is made, so a step
    /// neither dispatches on the op nor builds argument arrays (elementwise programs, strides and
    /// operand tables and layout copies are made here, once). `allreduce` runs through
    /// `communicator`.
    static func prepare(_ op: Op, _ x: [TensorRef], _ y: TensorRef, partition: LaunchPartition?,
                        packedWeight: UnsafePointer<Float>? = nil,
                        bf16Weight: UnsafePointer<UInt16>? = nil, libraryLayer: LibraryLinear? = nil,
                        communicator: Communicator = SingleProcess(), kernels: KernelSelection = .current,
                        threads: Int = 1, parameterVersion: ParameterVersion? = nil) -> () throws -> Void {
        switch op {
        case .conv2d(let stride, let padding):
            let launch = ConvolutionLaunch(x[0], x[1], y, stride: stride, padding: padding, provider: kernels.conv,
                                           threads: threads)
            return { try launch.run(x[0], x[1], x[2], y, version: parameterVersion?.value) }
        case .fused(.allReduce):
            return { try allReduce(x, y, communicator: communicator) }
        case .fused(.elementwise(let program)):
            let launch = ElementwiseLaunch(program, x, y)
            return { launch.run() }
        case .permute, .slice, .concat, .broadcast, .patchify, .unpatchify:
            let copies = Layout.copies(op, x.map(\.type), y.type)
            return { for copy in copies { copy.run(from: x[copy.operand], into: y) } }
        case .fused(.linear(let activation)):
            let (input, weight, bias) = (x[0], x[1], x[2])
            return {
                if let libraryLayer, libraryLayer.run(input, bias, y, activation: activation) { return }
                linear(input, weight, bias, y, activation: activation, packedWeight: packedWeight, bf16Weight: bf16Weight,
                       partition: partition)
            }
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
        var strides: [Int64] = [], pointers: [UnsafePointer<Float>?] = []
        for (i, operand) in x.enumerated() {
            guard let window = program.windows[i] else {
                strides += KernelLibrary.broadcastStrides(operand.shape, to: y.shape)
                pointers.append(UnsafePointer(operand.floats))
                continue
            }
            // A window reads the operand in place: its own row-major strides, from the box's corner.
            let own = rowMajorStrides(operand.shape)
            let pad = y.shape.count - window.shape.count
            strides += y.shape.indices.map { i in
                guard i >= pad else { return 0 }
                return window.shape[i - pad] == 1 && y.shape[i] != 1 ? 0 : Int64(own[i - pad])
            }
            let corner = zip(window.offsets, own).reduce(0) { $0 + $1.0 * $1.1 }
            pointers.append(UnsafePointer(operand.floats + corner))
        }
        self.strides = strides
        self.pointers = pointers
        output = y.floats
        count = y.count
    }

    func run() {
        guard count > 0 else { return }
        loom_elementwise(Int32(shape.count), shape, Int32(pointers.count), pointers, strides,
                         Int32(instructions.count), instructions, output)
    }
}

