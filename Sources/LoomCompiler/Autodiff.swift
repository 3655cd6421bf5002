import LoomIR

/// Reverse-mode automatic differentiation as a graph pass: one reverse sweep over the nodes on the
/// parameter→loss path, a VJP rule per primitive (`VJPRules`), contributions summed where a value is
/// used more than once, broadcast axes reduced back, `stop_gradient` honoured. Every backward node
/// keeps the scope of the forward node it differentiates and records it as its `origin`.
public enum Autodiff {

    /// Appends the gradient of the scalar output `loss` with respect to every trainable parameter
    /// (or those named in `parameters`) and adds them as outputs `grad.<key>`. Parameters the loss
    /// does not depend on get a zero gradient. With `backwardKernels` (the default) `token_attention`
    /// nodes (made before by `AttentionKernelPass`, the pipeline's `attention-kernels` stage) are
    /// differentiated as one op (`token_attention_backward`) and normalisations get the one-pass
    /// `norm_backward`; without it every gradient is written in primitive ops (the reference).
    public static func differentiate(_ graph: Graph, loss: String, parameters: [String]? = nil,
                                     backwardKernels: Bool = true) throws -> Graph {
        guard let lossOutput = graph.outputs.first(where: { $0.name == loss }) else {
            throw IRError("autodiff: graph \(graph.name) has no output \"\(loss)\" (outputs: \(graph.outputs.map(\.name).joined(separator: ", ")))")
        }
        if let fused = graph.nodes.first(where: {
            if case .fused(let kernel) = $0.op, !VJPRules.differentiableKernels(kernel) { return true } else { return false }
        }) {
            throw IRError("autodiff: node %\(fused.id) (\(fused.op.mnemonic)) is a fused kernel; differentiate before fusion")
        }
        if let convolution = graph.nodes.first(where: { if case .conv2d = $0.op { return true } else { return false } }) {
            let at = convolution.scope.isEmpty ? "" : " in \(convolution.scope)"
            throw IRError("autodiff: node %\(convolution.id) (conv2d)\(at) has no gradient rule: convolutions are inference-only (the VAE)")
        }
        let lossID = lossOutput.node
        guard graph.nodes[lossID].type == TensorType(.f32, []) else {
            throw IRError("autodiff: output \"\(loss)\" must be an f32 scalar, got \(graph.nodes[lossID].type)")
        }
        let targets = try selectParameters(graph, parameters)
        let needed = pathNodes(graph, from: Set(targets.map(\.id)), to: lossID)

        let b = GraphBuilder(extending: graph)
        var adjoints = AdjointTable()
        b.origin = lossID
        adjoints.add(b.withScope(graph.nodes[lossID].scope) { b.constant(1) }, to: lossID)
        for id in stride(from: lossID, through: 0, by: -1) where needed.contains(id) {
            let node = graph.nodes[id]
            guard let g = adjoints.take(id, builder: b, type: node.type, scope: node.scope) else { continue }
            if node.op.isLeaf {
                adjoints.finished[id] = g
                continue
            }
            b.origin = id
            let contributions = b.withScope(node.scope) {
                VJPRules.pullback(node, g, b, operandNeeded: node.inputs.map { needed.contains($0) }, kernels: backwardKernels)
            }
            for (operand, contribution) in zip(node.inputs, contributions) {
                guard let contribution, needed.contains(operand) else { continue }
                switch contribution {
                case .dense(let value): adjoints.add(value, to: operand)
                case .slice(let axis, let start, let end, let value):
                    adjoints.addSlice(value, axis: axis, start: start, end: end, to: operand)
                }
            }
        }
        b.origin = nil
        for node in targets {
            guard case .parameter(let name, _, _) = node.op else { continue }
            let gradient = adjoints.finished[node.id]
                ?? b.withScope(node.scope) { b.constant(0, shape: node.type.shape) }
            b.output(Naming.gradientPrefix + name, gradient)
        }
        return try b.build()
    }

    static func selectParameters(_ graph: Graph, _ names: [String]?) throws -> [Node] {
        let trainable = graph.parameterNodes.filter { $0.role == .parameter }
        guard let names else { return trainable }
        return try names.map { name in
            guard let node = trainable.first(where: { $0.op.parameterName == name }) else {
                throw IRError("autodiff: no trainable parameter \"\(name)\" in graph \(graph.name)")
            }
            return node
        }
    }

    /// Nodes that depend on a target through differentiable edges and that the loss depends on.
    static func pathNodes(_ graph: Graph, from sources: Set<Int>, to sink: Int) -> Set<Int> {
        var forward = sources
        for node in graph.nodes where !node.op.isLeaf && node.type.dtype == .f32 {
            if case .stopGradient = node.op { continue }
            let differentiable = VJPRules.differentiableOperands(node.op, arity: node.inputs.count)
            if zip(node.inputs, differentiable).contains(where: { $1 && forward.contains($0) }) {
                forward.insert(node.id)
            }
        }
        var backward: Set<Int> = [sink]
        for id in stride(from: sink, through: 0, by: -1) where backward.contains(id) {
            backward.formUnion(graph.nodes[id].inputs)
        }
        return forward.intersection(backward)
    }
}

/// The `autodiff` stage of the pipeline: `Autodiff.differentiate` as a pass.
public struct AutodiffPass: GraphPass {
    public var name: String { "autodiff" }
    public var loss: String
    public var backwardKernels: Bool

    public init(loss: String = Naming.lossOutput, backwardKernels: Bool = true) {
        self.loss = loss
        self.backwardKernels = backwardKernels
    }

    public func run(_ graph: Graph) throws -> Graph {
        try Autodiff.differentiate(graph, loss: loss, backwardKernels: backwardKernels)
    }
}
