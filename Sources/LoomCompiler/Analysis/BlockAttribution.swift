import LoomIR

/// Maps every node of a (forward, loss, training) graph to a profile block and a direction.
///
/// Blocks, from the module scope (for parameters and buffers: from the state-dict key):
/// - `embedders`: `x_embedder`, `pos_embed`, `t_embedder`, `y_embedder`, `feat_rope`, and the hoisted
///   `conditioning` GEMM (every block's adaLN linear on `silu(c)`);
/// - `blocks.N`: the N-th transformer block;
/// - `ig_head`: the Internal Guidance head `final_layer_xr`;
/// - `final_layer`: the output head;
/// - `objective`: scopes `objective`, `loss`, `vb` and the top level;
/// - `optimizer`: scope `optimizer`, buffers `optim.*` and `ema.*`;
/// - `other`: anything else.
///
/// Refinements for the top level: an input goes to the block of its first consumer (so `x` of a
/// forward graph lands in `embedders`); a top-level compute node whose operands all come from one
/// non-objective block joins it (`tokens + pos_embed`, `t_emb + y_emb` → `embedders`); a top-level
/// backward node takes the block of the forward node it stems from (`origin`).
///
/// Direction: a node is backward when autodiff made it (`origin != nil`) and it is not in the
/// optimizer block; every other node is forward.
public struct BlockAttribution: Sendable {
    public static let embedders = "embedders"
    public static let igHead = "ig_head"
    public static let finalLayer = "final_layer"
    public static let objective = "objective"
    public static let optimizer = "optimizer"
    public static let other = "other"

    /// Block label of each node, indexed like `graph.nodes`.
    public let labels: [String]
    /// Whether each node belongs to the backward pass, indexed like `graph.nodes`.
    public let isBackward: [Bool]
    /// The blocks present, in model order: embedders, blocks.0… (the IG head right after the block
    /// it reads from), final_layer, objective, optimizer, other.
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
                labels[node.id] = BlockAttribution.block(forKey: key)
            } else if !node.scope.isEmpty {
                labels[node.id] = BlockAttribution.block(forScope: node.scope)
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
        self.blocks = BlockAttribution.order(labels: labels, nodes: nodes, isBackward: isBackward)
    }

    /// The block of node `id`.
    public func block(of id: Int) -> String { labels[id] }

    /// The block a module scope such as `blocks.3.attn.qkv` belongs to ("" → objective).
    public static func block(forScope scope: String) -> String {
        let parts = scope.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let head = parts.first, !head.isEmpty else { return objective }
        switch head {
        case "x_embedder", "pos_embed", "t_embedder", "y_embedder", "feat_rope", "conditioning":
            return embedders
        case "blocks":
            if parts.count > 1, Int(parts[1]) != nil { return "blocks.\(parts[1])" }
            return other
        case "final_layer_xr":
            return igHead
        case "final_layer":
            return finalLayer
        case "objective", "loss", "vb":
            return objective
        case "optimizer", "optim", "ema":
            return optimizer
        default:
            return other
        }
    }

    /// The block of a parameter or buffer key (`blocks.0.attn.qkv.weight`, `optim.m.…`, `ema.…`).
    public static func block(forKey key: String) -> String {
        block(forScope: key)
    }

    /// Index of `blocks.N` (nil for other labels).
    public static func blockIndex(_ label: String) -> Int? {
        guard label.hasPrefix("blocks.") else { return nil }
        return Int(label.dropFirst("blocks.".count))
    }

    /// Model order: embedders; transformer blocks and the IG head by their first forward compute
    /// node; final_layer, objective, optimizer, other.
    static func order(labels: [String], nodes: [Node], isBackward: [Bool]) -> [String] {
        let present = Set(labels)
        var middle: [String: Int] = [:]
        for node in nodes where !isBackward[node.id] {
            let label = labels[node.id]
            guard label == igHead || blockIndex(label) != nil else { continue }
            let rank = node.op.isLeaf ? nodes.count + node.id : node.id  // prefer compute nodes
            middle[label] = min(middle[label] ?? Int.max, rank)
        }
        for label in present where (label == igHead || blockIndex(label) != nil) && middle[label] == nil {
            middle[label] = 2 * nodes.count + (blockIndex(label) ?? Int.max / 4)
        }
        let ordered = middle.sorted { a, b in
            if a.value != b.value { return a.value < b.value }
            return (blockIndex(a.key) ?? Int.max) < (blockIndex(b.key) ?? Int.max)
        }.map(\.key)
        var result: [String] = present.contains(embedders) ? [embedders] : []
        result += ordered
        for label in [finalLayer, objective, optimizer, other] where present.contains(label) { result.append(label) }
        return result
    }
}
