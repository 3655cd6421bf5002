import LoomIR

/// Hoists step-invariant work on the conditioning vector: every `matmul(a, W, transpose_b) + b`
/// that reads the same rank-2 value `a` (in a DiT: `silu(c)`, read by the adaLN linear of every block,
/// the final layer and the IG head) with parameter weights and biases becomes one GEMM over the
/// concatenated weights, and each original result becomes a slice of it. Parameters are moved to the
/// front so the concatenations can be formed before the first block. Lowering lays the concatenated
/// parameters out back to back, so the concatenation is a view and costs nothing at run time.
public struct HoistConditioningPass: GraphPass {
    /// Scope of the hoisted GEMM and its slices.
    public static let scope = "conditioning"
    public let name = "hoist"

    public init() {}

    struct Member {
        let add: Int
        let weight: Int
        let bias: Int
    }

    public func run(_ graph: Graph) throws -> Graph {
        let uses = useCounts(graph)
        var groups: [Int: [Member]] = [:]
        for add in graph.nodes where add.op == .binary(.add) {
            let mm = graph.nodes[add.inputs[0]], bias = graph.nodes[add.inputs[1]]
            guard mm.op == .matmul(transposeA: false, transposeB: true), uses[mm.id] == 1,
                  graph.nodes[mm.inputs[0]].type.rank == 2,
                  case .parameter = graph.nodes[mm.inputs[1]].op, case .parameter = bias.op,
                  bias.type.shape == [mm.type.shape[1]] else { continue }
            groups[mm.inputs[0], default: []].append(Member(add: add.id, weight: mm.inputs[1], bias: bias.id))
        }
        // Each parameter may join one group only (lowering places it once).
        var claimed = Set<Int>()
        var plans: [Int: [Member]] = [:]
        for source in groups.keys.sorted() {
            let members = groups[source]!.filter { !claimed.contains($0.weight) && !claimed.contains($0.bias) }
            guard members.count >= 2 else { continue }
            for m in members { claimed.formUnion([m.weight, m.bias]) }
            plans[source] = members
        }
        guard !plans.isEmpty else { return graph }
        let memberMatmuls = Set(plans.values.flatMap { $0.map { graph.nodes[$0.add].inputs[0] } })

        var rewriter = GraphRewriter(graph)
        // Leaves first (parameters, inputs, constants): every operand of a combined GEMM then exists
        // before the first block runs.
        for node in graph.nodes where node.op.isLeaf { rewriter.copy(node) }
        var sliceOf: [Int: (source: Int, start: Int, end: Int)] = [:]
        var combined: [Int: Int] = [:]  // source → new id of the combined result
        for node in graph.nodes where !node.op.isLeaf {
            if let (source, start, end) = sliceOf[node.id].map({ ($0.source, $0.start, $0.end) }) {
                let value = rewriter.builder.tensor(combined[source]!)
                let slice = rewriter.builder.withScope(node.scope) { value.slice(axis: 1, start..<end) }
                rewriter.map[node.id] = slice.id
                continue
            }
            if let members = plans[node.id] {
                rewriter.copy(node)
                let b = rewriter.builder
                let a = b.tensor(rewriter.map[node.id]!)
                let weights = members.map { b.tensor(rewriter.map[$0.weight]!) }
                let biases = members.map { b.tensor(rewriter.map[$0.bias]!) }
                let y = b.withScope(HoistConditioningPass.scope) {
                    a.matmul(concat(weights, axis: 0), transposeB: true) + concat(biases, axis: 0)
                }
                combined[node.id] = y.id
                var offset = 0
                for m in members {
                    let width = graph.nodes[m.bias].type.shape[0]
                    sliceOf[m.add] = (node.id, offset, offset + width)
                    offset += width
                }
                continue
            }
            if memberMatmuls.contains(node.id) { continue }  // replaced by the combined GEMM
            rewriter.copy(node)
        }
        return try rewriter.finish(remarks: plans.keys.sorted().map { source in
            let node = graph.nodes[source]
            return "hoisted: \(plans[source]!.count) linears reading one \(node.op.mnemonic) value (\(node.scope.isEmpty ? "top level" : node.scope)) → one GEMM over weights laid out back to back"
        })
    }
}
