import LoomIR

/// Groups of primitive nodes to be replaced by one fused node at the group's root.
struct FusionPlan {
    let graph: Graph
    let uses: [Int]
    let consumers: [[Int]]
    let outputs: Set<Int>
    /// Nodes folded into a fused node (not emitted).
    var absorbed: Set<Int> = []
    /// Root node → fused op and its operands (old ids).
    var replacements: [Int: (op: Op, inputs: [Int])] = [:]
    /// Root node → the nodes it absorbed.
    var groups: [Int: [Int]] = [:]
    var remarks: [String] = []

    init(_ graph: Graph) {
        self.graph = graph
        uses = useCounts(graph)
        consumers = consumerLists(graph)
        outputs = Set(graph.outputs.map(\.node))
    }

    func node(_ id: Int) -> Node { graph.nodes[id] }

    /// True when `id` may disappear into a fused kernel: read once, not an output, not claimed.
    func isPrivate(_ id: Int) -> Bool {
        uses[id] == 1 && !outputs.contains(id) && !absorbed.contains(id) && replacements[id] == nil
    }

    func isClaimed(_ id: Int) -> Bool { absorbed.contains(id) || replacements[id] != nil }

    mutating func replace(root: Int, with op: Op, inputs: [Int], absorbing interior: [Int]) {
        replacements[root] = (op, inputs)
        groups[root] = interior
        absorbed.formUnion(interior)
    }

    /// "read by N nodes", naming the backward pass when one of the readers belongs to it.
    func readers(_ id: Int) -> String {
        let backward = consumers[id].contains { node($0).origin != nil }
        let output = outputs.contains(id) ? " and is a graph output" : ""
        return "(\(node(id).op.mnemonic)) is read by \(consumers[id].count) nodes\(output)" + (backward ? " (the backward pass needs it)" : "")
    }

    /// Records why a fusion was refused. Remarks name scopes and ops, not node numbers: later
    /// passes renumber the graph.
    mutating func refuse(_ kind: String, at id: Int, _ reason: String) {
        let scope = node(id).scope.isEmpty ? "top level" : node(id).scope
        remarks.append("fusion refused: \(kind) in \(scope): \(reason)")
    }
}

/// Fusion for the CPU: norm + adaLN modulate, GEMM + bias (+ activation) epilogues, attention
/// (inference graphs; read token-major from the qkv projection when the head split allows), then
/// maximal elementwise chains. Each fused kernel keeps the primitive subgraph it replaces as its
/// reference lowering (tests compare both). Refused fusions leave a remark in the graph, printed in
/// IR dumps.
public struct FusionPass: GraphPass {
    public let name = "fusion"

    public init() {}

    public func run(_ graph: Graph) throws -> Graph {
        var plan = FusionPlan(graph)
        NormModulateFusion.apply(&plan)
        LinearFusion.apply(&plan)
        AttentionFusion.apply(&plan)
        TokenAttentionFusion.apply(&plan)
        ElementwiseFusion.apply(&plan)
        return try plan.rewrite()
    }
}

/// Before autodiff: attention with the DiT head split becomes `token_attention`, which autodiff
/// differentiates as one op (`token_attention_backward`, flash-style: the backward recomputes each
/// head's probabilities in cache instead of saving [B, H, T, T] probabilities and the head-major
/// copies of q, k, v). Patterns with anything between the split and the scores (RoPE, q/k norms)
/// stay primitive.
public struct AttentionKernelPass: GraphPass {
    public let name = "attention-kernels"

    public init() {}

    public func run(_ graph: Graph) throws -> Graph {
        var plan = FusionPlan(graph)
        AttentionFusion.apply(&plan)
        TokenAttentionFusion.apply(&plan)
        // Plain `attention` has no VJP: keep only the token-major kernels.
        for (root, replacement) in plan.replacements {
            guard case .fused(.attention) = replacement.op else { continue }
            plan.absorbed.subtract(plan.groups[root] ?? [])
            plan.replacements.removeValue(forKey: root)
            plan.groups.removeValue(forKey: root)
        }
        plan.remarks.removeAll()
        return try plan.rewrite()
    }
}

extension FusionPlan {
    /// The graph with every group replaced by its fused node, remarks attached.
    func rewrite() throws -> Graph {
        var rewriter = GraphRewriter(graph)
        for node in graph.nodes where !absorbed.contains(node.id) {
            if let replacement = replacements[node.id] {
                let id = rewriter.emit(replacement.op, replacement.inputs, like: node)
                rewriter.map[node.id] = id
                // Backward nodes that name an absorbed node as their origin now name the kernel.
                for member in groups[node.id] ?? [] { rewriter.map[member] = id }
            } else {
                rewriter.copy(node)
            }
        }
        return try rewriter.finish(remarks: remarks)
    }
}
