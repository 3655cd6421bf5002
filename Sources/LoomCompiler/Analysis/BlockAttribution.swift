import LoomIR

/// Maps every node of a (forward, loss, training) graph to a profile block and a direction.
///
/// Blocks come from the graph's `scopeBlocks`, the annotations its author made (the zoo marks the
/// embedders, each transformer block, the IG head and the final layer): a node's block is the
/// label of the longest annotated prefix of its scope (for parameters and buffers: of its key).
/// The compiler adds only names of its own: `optimizer` (the optimizer stage's scope and its
/// `optim.*` / `ema.*` buffers), the hoisted conditioning GEMM (which joins the block of the first
/// annotated scope, the embedders), `objective` for top-level nodes and unannotated objective
/// scopes the author marked so, and `other` for anything else.
///
/// Refinements for the top level: an input goes to the block of its first consumer (so `x` of a
/// forward graph lands in the embedders); a top-level compute node whose operands all come from one
/// non-objective block joins it (`tokens + pos_embed`, `t_emb + y_emb` → embedders); a top-level
/// backward node takes the block of the forward node it stems from (`origin`).
///
/// Direction: a node is backward when autodiff made it (`origin != nil`) and it is not in the
/// optimizer block; every other node is forward.
public struct BlockAttribution: Sendable {
    public static let objective = "objective"
    public static let optimizer = "optimizer"
    public static let other = "other"

    /// Block label of each node, indexed like `graph.nodes`.
    public let labels: [String]
    /// Whether each node belongs to the backward pass, indexed like `graph.nodes`.
    public let isBackward: [Bool]
    /// The blocks present, in model order: annotated blocks by their first forward compute node,
    /// then objective, optimizer, other.
    public let blocks: [String]

    public init(graph: Graph) {
        let nodes = graph.nodes
        var labels = [String](repeating: BlockAttribution.objective, count: nodes.count)
        var firstConsumer = [Int?](repeating: nil, count: nodes.count)
        for node in nodes {
            for operand in node.inputs where firstConsumer[operand] == nil { firstConsumer[operand] = node.id }
        }
        // Pass 1: everything that is decided by its own scope or key.
        var undecided: [Int] = []
        for node in nodes {
            if let key = node.op.parameterName {
                labels[node.id] = BlockAttribution.block(forKey: key, in: graph)
            } else if !node.scope.isEmpty {
                labels[node.id] = BlockAttribution.block(forScope: node.scope, in: graph)
            } else {
                undecided.append(node.id)
            }
        }
        // Pass 2: top-level compute nodes, in graph order (operands come first).
        var topLevelInputs: [Int] = []
        for id in undecided {
            let node = nodes[id]
            if case .input = node.op {
                topLevelInputs.append(id)
            } else if let origin = node.origin, origin < id {
                labels[id] = labels[origin]
            } else {
                let computed = node.inputs.filter { !nodes[$0].op.isLeaf || nodes[$0].op.parameterName != nil }
                let operandBlocks = Set(computed.map { labels[$0] })
                if operandBlocks.count == 1, let only = operandBlocks.first, only != BlockAttribution.objective {
                    labels[id] = only
                }
            }
        }
        // Pass 3: top-level inputs follow their first consumer.
        for id in topLevelInputs {
            labels[id] = firstConsumer[id].map { labels[$0] } ?? BlockAttribution.objective
        }
        self.labels = labels
        self.isBackward = nodes.map { $0.origin != nil && labels[$0.id] != BlockAttribution.optimizer }
        self.blocks = BlockAttribution.order(labels: labels, nodes: nodes, isBackward: isBackward,
                                             annotated: graph.scopeBlocks.map(\.block))
    }

    /// The block of node `id`.
    public func block(of id: Int) -> String { labels[id] }

    /// The block of a module scope such as `blocks.3.attn.qkv` in `graph` ("" → objective).
    public static func block(forScope scope: String, in graph: Graph) -> String {
        if scope.isEmpty { return objective }
        let head = scope.split(separator: ".").first.map(String.init) ?? scope
        if head == Naming.optimizerScope { return optimizer }
        if head == HoistConditioningPass.scope { return graph.scopeBlocks.first?.block ?? other }
        return graph.scopeBlock(of: scope)?.block ?? other
    }

    /// The block of a parameter or buffer key (`blocks.0.attn.qkv.weight`, `optim.m.…`, `ema.…`).
    public static func block(forKey key: String, in graph: Graph) -> String {
        if key.hasPrefix(Naming.optimizerPrefix) || key.hasPrefix(Naming.emaPrefix) { return optimizer }
        return block(forScope: key, in: graph)
    }

    /// Model order: annotated blocks by their first forward compute node (annotation order breaks
    /// ties and places blocks without compute), then objective, optimizer, other.
    static func order(labels: [String], nodes: [Node], isBackward: [Bool], annotated: [String]) -> [String] {
        let present = Set(labels)
        let tail = [objective, optimizer, other]
        var first: [String: Int] = [:]
        for node in nodes where !isBackward[node.id] && !node.op.isLeaf {
            let label = labels[node.id]
            if first[label] == nil { first[label] = node.id }
        }
        var rank: [String: Int] = [:]
        for (index, label) in annotated.enumerated() where rank[label] == nil { rank[label] = index }
        let middle = present.subtracting(tail).sorted { a, b in
            let (fa, fb) = (first[a] ?? Int.max, first[b] ?? Int.max)
            if fa != fb { return fa < fb }
            return (rank[a] ?? Int.max, a) < (rank[b] ?? Int.max, b)
        }
        return middle + tail.filter { present.contains($0) }
    }
}
