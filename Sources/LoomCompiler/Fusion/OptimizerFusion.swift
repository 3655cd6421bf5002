import LoomIR

/// Fuses the optimizer that `OptimizerPass` appends into two kernels:
/// - the squared global gradient norm (a `square` and a `reduce_sum` per gradient and a chain of
///   adds) becomes one `sum_squares` over every gradient;
/// - the AdamW + EMA update of every parameter (about fifteen elementwise nodes per parameter)
///   becomes one `adamw` launch whose result is the new state `[p | m | v | ema]`; each `update.*`
///   output is a slice of it. Lowering lays the state out back to back in the parameter region, so
///   the kernel reads and writes it in one pass, in place.
///
/// The pass recognises the update from its outputs (`update.<key>`, `update.optim.m.<key>`, …) and
/// checks each parameter's expressions node by node; the primitive graph stays the reference
/// lowering. When anything differs (another reader of an intermediate, a parameter read after the
/// update, hyper-parameters that differ between parameters) it refuses and says why in the dump.
public struct OptimizerFusionPass: GraphPass {
    public let name = "optimizer-fusion"

    public init() {}

    public func run(_ graph: Graph) throws -> Graph {
        var matcher = OptimizerMatcher(graph)
        let update: AdamWMatch?
        do {
            update = try matcher.matchAdamW()
        } catch let refusal as OptimizerMatcher.Refusal {
            update = nil
            matcher.remarks.append("fusion refused: adamw in optimizer: \(refusal.reason)")
        }
        let norm = matcher.matchNorm(alsoAbsorbed: update?.absorbed ?? [])
        guard norm != nil || update != nil else {
            if matcher.remarks.isEmpty { return graph }
            var result = graph
            result.remarks += matcher.remarks
            return result
        }
        var absorbed = Set<Int>()
        if let norm { absorbed.formUnion(norm.interior) }
        if let update { absorbed.formUnion(update.absorbed) }

        var rewriter = GraphRewriter(graph)
        for node in graph.nodes {
            if let norm, node.id == norm.root {
                rewriter.map[node.id] = rewriter.emit(.fused(.sumSquares), norm.operands, like: node)
            } else if let update, node.id == update.emitAt {
                emit(update, like: node, into: &rewriter)
            } else if !absorbed.contains(node.id) {
                rewriter.copy(node)
            }
        }
        return try rewriter.finish(remarks: matcher.remarks)
    }

    /// The `adamw` node, then one slice (and reshape) of it per updated value.
    private func emit(_ update: AdamWMatch, like node: Node, into rewriter: inout GraphRewriter) {
        let u = rewriter.emit(.fused(.adamw(update.kernel)), update.operands, like: node)
        let segments = update.segments
        let total = segments.reduce(0) { $0 + rewriter.source.nodes[$1.parameter].type.elementCount }
        var offset = 0
        for segment in segments {
            let type = rewriter.source.nodes[segment.parameter].type
            for (part, root) in segment.roots.enumerated() {
                let start = part * total + offset
                var id = rewriter.emit(.slice(axis: 0, start: start, end: start + type.elementCount), newInputs: [u],
                                       like: node, origin: nil)
                if type.shape != [type.elementCount] {
                    id = rewriter.emit(.reshape(shape: type.shape), newInputs: [id], like: node, origin: nil)
                }
                rewriter.map[root] = id
            }
            offset += type.elementCount
        }
    }
}

/// The grad-norm reduction found by `OptimizerMatcher`.
struct SumSquaresMatch {
    /// The last add (replaced by `sum_squares`).
    let root: Int
    /// The tensors whose squares are summed, in the order the adds visit them.
    let operands: [Int]
    /// Nodes folded away (squares, reductions, adds other than the root).
    let interior: [Int]
}

/// One parameter's update: its state nodes and the new values (parameter, m, v, EMA).
struct AdamWSegment {
    let parameter: Int
    let state: [Int]
    /// Nodes computing the new parameter, m, v (and EMA), in state order.
    let roots: [Int]
    /// The gradient operand (the raw gradient when the clip multiply is absorbed).
    let gradient: Int
}

/// The whole optimizer update found by `OptimizerMatcher`.
struct AdamWMatch {
    let kernel: AdamWUpdate
    let segments: [AdamWSegment]
    let scalars: [Int]
    /// Every node the kernel replaces (roots included).
    let absorbed: Set<Int>
    /// Where the kernel is emitted: the last root.
    let emitAt: Int

    /// Operands in `AdamWUpdate` order.
    var operands: [Int] {
        var out = segments.map(\.gradient)
        for part in 0..<kernel.stateParts { out += segments.map { $0.state[part] } }
        return out + scalars
    }
}
