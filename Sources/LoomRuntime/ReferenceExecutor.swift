import LoomIR

/// Runs a graph node by node on the CPU: OpenBLAS `cblas_sgemm` for matrix products, the C kernels
/// for everything else, every intermediate kept in its own buffer. Simple and obviously right: the
/// ground truth compiled plans are compared against.
public struct ReferenceExecutor {
    public let threads: Int

    public init(threads: Int = Threading.defaultThreads) {
        self.threads = threads
    }

    /// Runs `graph` and returns its outputs by name.
    public func run(_ graph: Graph, inputs: [String: HostTensor],
                    parameters: [String: HostTensor]) throws -> [String: HostTensor] {
        let values = try evaluate(graph, inputs: inputs, parameters: parameters, keepAll: false)
        var outputs: [String: HostTensor] = [:]
        for output in graph.outputs { outputs[output.name] = values[output.node] }
        return outputs
    }

    /// Runs `graph` and returns the value of every node, indexed by node id.
    public func evaluateAll(_ graph: Graph, inputs: [String: HostTensor],
                            parameters: [String: HostTensor]) throws -> [HostTensor] {
        try evaluate(graph, inputs: inputs, parameters: parameters, keepAll: true)
    }

    /// Runs the nodes in order; unless `keepAll`, a value is released after its last use
    /// (outputs are kept), so peak memory follows what is live rather than the whole graph.
    func evaluate(_ graph: Graph, inputs: [String: HostTensor], parameters: [String: HostTensor],
                  keepAll: Bool) throws -> [HostTensor] {
        try checkBindings(graph, inputs: inputs, parameters: parameters)
        Threading.setThreads(threads)
        var lastUse = Array(0..<graph.nodes.count)
        for node in graph.nodes { for operand in node.inputs { lastUse[operand] = max(lastUse[operand], node.id) } }
        for output in graph.outputs { lastUse[output.node] = graph.nodes.count }
        var releaseAt = [[Int]](repeating: [], count: graph.nodes.count + 1)
        for (id, last) in lastUse.enumerated() { releaseAt[last].append(id) }
        var values: [HostTensor] = []
        values.reserveCapacity(graph.nodes.count)
        let released = HostTensor(shape: [0], floats: [])
        for node in graph.nodes {
            let value: HostTensor
            switch node.op {
            case .input(let name): value = inputs[name]!
            case .parameter(let name, _, _): value = parameters[name]!
            default:
                do {
                    value = try OpKernels.evaluate(node.op, node.inputs.map { values[$0] }, type: node.type)
                } catch let error as RuntimeError {
                    let at = node.scope.isEmpty ? "top level" : node.scope
                    throw RuntimeError("node %\(node.id) (\(node.op.mnemonic)) in \(at): \(error.message)")
                }
            }
            values.append(value)
            if !keepAll { for id in releaseAt[node.id] { values[id] = released } }
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
