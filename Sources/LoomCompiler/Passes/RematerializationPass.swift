import LoomIR

/// Block-level rematerialisation ("activation checkpointing") of a training graph: the forward
/// values of each chosen block that backward reads are computed a second time, right before the
/// block's backward, from the block's inputs. The originals then die inside the forward pass, so
/// between forward and backward only each block's inputs (its checkpoint) stay live.
///
/// Runs after fusion (the last pass before lowering) so that no later CSE merges the copies back
/// into the originals. Forward = every node the `loss` output depends on; backward = the rest.
public struct RematerializationPass: GraphPass {
    public var name: String { "remat" }
    /// Block scopes to rematerialise, e.g. `blocks.3`.
    public var blocks: [String]
    public var lossOutput: String

    public init(blocks: [String], lossOutput: String = Naming.lossOutput) {
        self.blocks = blocks
        self.lossOutput = lossOutput
    }

    /// The scopes of the repeated blocks (`ScopeBlock.repeated`, annotated by the model's author)
    /// that `graph`'s forward pass computes in, in model order.
    public static func candidateBlocks(_ graph: Graph, lossOutput: String = Naming.lossOutput) -> [String] {
        guard let loss = graph.outputs.first(where: { $0.name == lossOutput }) else { return [] }
        let forward = ancestors(graph, of: loss.node)
        let repeated = graph.scopeBlocks.filter(\.repeated)
        return repeated.filter { block in forward.contains { block.contains(graph.nodes[$0].scope) } }.map(\.scope)
    }

    static func ancestors(_ graph: Graph, of sink: Int) -> Set<Int> {
        var seen: Set<Int> = [sink]
        var stack = [sink]
        while let id = stack.popLast() {
            for input in graph.nodes[id].inputs where seen.insert(input).inserted { stack.append(input) }
        }
        return seen
    }

    static func inBlock(_ scope: String, _ block: String) -> Bool {
        scope == block || scope.hasPrefix(block + ".")
    }

    public func run(_ graph: Graph) throws -> Graph {
        guard !blocks.isEmpty else { return graph }
        guard let loss = graph.outputs.first(where: { $0.name == lossOutput }) else {
            throw IRError("remat: graph \(graph.name) has no output \"\(lossOutput)\" (rematerialisation needs a training graph)")
        }
        let forward = Self.ancestors(graph, of: loss.node)
        let known = Set(Self.candidateBlocks(graph, lossOutput: lossOutput))
        // Per block: the forward members backward reads, closed over their in-block operands,
        // and the first backward launch that needs one of them.
        var clonesAt: [Int: [(block: String, members: [Int])]] = [:]
        var remarks: [String] = []
        for block in blocks {
            guard known.contains(block) else {
                throw IRError("remat: no block \"\(block)\" in the forward pass of \(graph.name) (blocks: \(known.sorted().joined(separator: ", ")))")
            }
            let members = Set(forward.filter { !graph.nodes[$0].op.isLeaf && Self.inBlock(graph.nodes[$0].scope, block) })
            var needed = Set<Int>()
            var first: Int?
            for node in graph.nodes where !forward.contains(node.id) {
                let reads = node.inputs.filter { members.contains($0) }
                guard !reads.isEmpty else { continue }
                needed.formUnion(reads)
                first = min(first ?? node.id, node.id)
            }
            guard let insertion = first else { continue }
            var stack = Array(needed)
            while let id = stack.popLast() {
                for input in graph.nodes[id].inputs where members.contains(input) && needed.insert(input).inserted {
                    stack.append(input)
                }
            }
            let ordered = needed.sorted()
            clonesAt[insertion, default: []].append((block, ordered))
            remarks.append("remat: \(block) recomputes \(ordered.count) of its \(members.count) forward nodes before its backward")
        }
        var rewriter = GraphRewriter(graph)
        // Forward node → its recomputed copy, for the backward nodes after the copy.
        var recomputed: [Int: Int] = [:]
        func operands(_ node: Node) -> [Int] { node.inputs.map { recomputed[$0] ?? rewriter.map[$0]! } }
        for node in graph.nodes {
            for (_, members) in clonesAt[node.id] ?? [] {
                for id in members {
                    let original = graph.nodes[id]
                    recomputed[id] = rewriter.emit(original.op, newInputs: operands(original), like: original,
                                                   origin: rewriter.map[id])
                }
            }
            if forward.contains(node.id) || recomputed.isEmpty {
                rewriter.copy(node)
            } else {
                rewriter.map[node.id] = rewriter.emit(node.op, newInputs: operands(node), like: node,
                                                      origin: node.origin.flatMap { rewriter.map[$0] })
            }
        }
        return try rewriter.finish(remarks: remarks)
    }
}
