import LoomIR

/// The `allreduce` stage of a data-parallel training step: every rank runs the same step on its
/// slice of the global batch, and this stage makes the gradients the mean over the ranks before the
/// optimizer reads them.
///
/// Every `grad.<key>` output (autodiff's gradients, each the gradient of this rank's mean loss) is
/// routed through one `allreduce` launch over all of them; its flat result
/// `[g₀ | g₁ | …]` (f32[Σ |gᵢ|], gradients in output order) is sliced and reshaped back into the
/// `grad.<key>` outputs, which the optimizer stage then reads as before. With equal slices the mean
/// of the ranks' gradients is the gradient of the global batch's mean loss.
///
/// One launch after the whole backward: the exchange does not overlap the backward pass (see
/// `Docs/distributed.md` for why buckets were left out).
public struct AllReducePass: GraphPass {
    /// Scope of the allreduce and the slices of its result.
    public static let scope = "allreduce"
    public let name = "allreduce"

    public init() {}

    public func run(_ graph: Graph) throws -> Graph {
        // Each gradient value once, in output order (two outputs may name one value).
        var operands: [Int] = []
        for output in graph.outputs where output.name.hasPrefix(Naming.gradientPrefix) && !operands.contains(output.node) {
            operands.append(output.node)
        }
        guard !operands.isEmpty else {
            throw IRError("allreduce: graph \(graph.name) has no \(Naming.gradientPrefix)* outputs; run autodiff first")
        }
        let b = GraphBuilder(extending: graph)
        var averaged: [Int: Int] = [:]
        b.scoped(AllReducePass.scope) {
            let flat = b.append(.fused(.allReduce), operands.map { b.tensor($0) })
            var offset = 0
            for id in operands {
                let type = graph.nodes[id].type
                let part = b.append(.slice(axis: 0, start: offset, end: offset + type.elementCount), [flat])
                averaged[id] = b.append(.reshape(shape: type.shape), [part]).id
                offset += type.elementCount
            }
        }
        var result = try b.build()
        for index in result.outputs.indices where result.outputs[index].name.hasPrefix(Naming.gradientPrefix) {
            result.outputs[index].node = averaged[result.outputs[index].node]!
        }
        result.refreshRoles()
        try Verifier.verify(result)
        return result
    }
}
