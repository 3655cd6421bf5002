import CLoomKernels
import LoomIR

/// Runs a graph node by node on the CPU: Loom's own GEMM for matrix products (on operands rounded
/// to bf16 where a node says `compute=bf16`), the C kernels for everything else (`KernelLibrary`),
/// every intermediate in a buffer of its own. Simple and obviously right: the ground truth compiled
/// plans are compared against, independent of the library kernels a plan may choose.
public struct ReferenceExecutor {
    public let threads: Int
    /// The reference's GEMMs: Loom's own fp32 kernel, bf16 by rounding the operands.
    public static let kernels = KernelSelection(isa: .avx2, f32: .own, bf16: .emulated)

    public init(threads: Int = Threading.defaultThreads) {
        self.threads = threads
    }

    /// Runs `graph` and returns its outputs by name.
    public func run(_ graph: Graph, inputs: [String: HostTensor],
                    parameters: [String: HostTensor]) throws -> [String: HostTensor] {
        let values = try evaluate(graph, inputs: inputs, parameters: parameters, keepAll: false)
        var outputs: [String: HostTensor] = [:]
        for output in graph.outputs { outputs[output.name] = values[output.node]!.ref.hostTensor() }
        return outputs
    }

    /// Runs `graph` and returns the value of every node, indexed by node id.
    public func evaluateAll(_ graph: Graph, inputs: [String: HostTensor],
                            parameters: [String: HostTensor]) throws -> [HostTensor] {
        try evaluate(graph, inputs: inputs, parameters: parameters, keepAll: true).map { $0!.ref.hostTensor() }
    }

    /// Runs the nodes in order, each into a buffer of its own; unless `keepAll`, a buffer is
    /// released after its last use (outputs are kept), so memory follows what is live.
    func evaluate(_ graph: Graph, inputs: [String: HostTensor], parameters: [String: HostTensor],
                  keepAll: Bool) throws -> [RawBuffer?] {
        try checkBindings(graph, inputs: inputs, parameters: parameters)
        Threading.setThreads(threads)
        Self.kernels.apply()
        defer { loom_gemm_set_precision(LOOM_PRECISION_F32) }
        var lastUse = Array(0..<graph.nodes.count)
        for node in graph.nodes { for operand in node.inputs { lastUse[operand] = max(lastUse[operand], node.id) } }
        for output in graph.outputs { lastUse[output.node] = graph.nodes.count }
        var releaseAt = [[Int]](repeating: [], count: graph.nodes.count + 1)
        for (id, last) in lastUse.enumerated() { releaseAt[last].append(id) }
        var values: [RawBuffer?] = []
        values.reserveCapacity(graph.nodes.count)
        for node in graph.nodes {
            let value: RawBuffer
            switch node.op {
            case .input(let name): value = RawBuffer(inputs[name]!)
            case .parameter(let name, _, _): value = RawBuffer(parameters[name]!)
            default:
                value = RawBuffer(node.type)
                loom_gemm_set_precision(node.compute == .bf16 ? LOOM_PRECISION_BF16 : LOOM_PRECISION_F32)
                do {
                    try KernelLibrary.launch(node.op, node.inputs.map { values[$0]!.ref }, value.ref)
                } catch let error as RuntimeError {
                    let at = node.scope.isEmpty ? "top level" : node.scope
                    throw RuntimeError("node %\(node.id) (\(node.op.mnemonic)) in \(at): \(error.message)")
                }
            }
            values.append(value)
            if !keepAll { for id in releaseAt[node.id] { values[id] = nil } }
        }
        return values
    }

    /// Every input and parameter must be present with exactly the declared dtype and shape.
    public func checkBindings(_ graph: Graph, inputs: [String: HostTensor],
                              parameters: [String: HostTensor]) throws {
        for node in graph.nodes {
            switch node.op {
            case .input(let name):
                guard let value = inputs[name] else {
                    throw RuntimeError("missing input \"\(name)\": expected \(node.type)")
                }
                guard value.type == node.type else {
                    throw RuntimeError("input \"\(name)\": expected \(node.type), found \(value.type)")
                }
            case .parameter(let name, _, _):
                guard let value = parameters[name] else {
                    throw RuntimeError("missing parameter \"\(name)\": expected \(node.type)")
                }
                guard value.type == node.type else {
                    throw RuntimeError("parameter \"\(name)\": expected \(node.type), found \(value.type)")
                }
            default:
                break
            }
        }
    }
}
