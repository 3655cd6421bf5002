import LoomIR
import LoomRuntime

/// Recognises the optimizer subgraph that `OptimizerPass` writes (see `OptimizerFusionPass`).
struct OptimizerMatcher {
    struct Refusal: Error {
        let reason: String
    }

    let graph: Graph
    let uses: [Int]
    let consumers: [[Int]]
    let outputNodes: [String: Int]
    let outputIDs: Set<Int>
    var remarks: [String] = []

    init(_ graph: Graph) {
        self.graph = graph
        uses = useCounts(graph)
        consumers = consumerLists(graph)
        outputNodes = Dictionary(graph.outputs.map { ($0.name, $0.node) }, uniquingKeysWith: { first, _ in first })
        outputIDs = Set(graph.outputs.map(\.node))
    }

    func node(_ id: Int) -> Node { graph.nodes[id] }
    func isScalar(_ id: Int) -> Bool { node(id).type.rank == 0 }

    // MARK: grad norm

    /// `grad_norm = sqrt(Σ reduce_sum(square(gᵢ)))` with private intermediates; a square may
    /// also be read by nodes the optimizer fusion absorbs (`alsoAbsorbed`).
    func matchNorm(alsoAbsorbed: Set<Int> = []) -> SumSquaresMatch? {
        guard let normID = outputNodes["grad_norm"], node(normID).op == .unary(.sqrt) else { return nil }
        let root = node(normID).inputs[0]
        guard uses[root] == 1, !outputIDs.contains(root) else { return nil }
        var operands: [Int] = []
        var interior: [Int] = []
        func collect(_ id: Int) -> Bool {
            let n = node(id)
            switch n.op {
            case .binary(.add) where n.type.rank == 0:
                if id != root {
                    guard uses[id] == 1, !outputIDs.contains(id) else { return false }
                    interior.append(id)
                }
                return collect(n.inputs[0]) && collect(n.inputs[1])
            case .reduce(.sum, let axes, false) where axes == Array(0..<node(n.inputs[0]).type.rank):
                let square = node(n.inputs[0])
                guard uses[id] == 1, !outputIDs.contains(id), square.op == .unary(.square), !outputIDs.contains(square.id),
                      consumers[square.id].allSatisfy({ $0 == id || alsoAbsorbed.contains($0) }) else { return false }
                interior += [id, square.id]
                operands.append(square.inputs[0])
                return true
            default:
                return false
            }
        }
        guard collect(root), operands.count >= 2 else { return nil }
        return SumSquaresMatch(root: root, operands: operands, interior: interior)
    }

    // MARK: AdamW + EMA

    /// The per-parameter update expressions, checked node by node; nil when the graph has no
    /// `update.optim.m.*` outputs. Throws `Refusal` when the optimizer is there but cannot be fused.
    mutating func matchAdamW() throws -> AdamWMatch? {
        let prefix = Plan.updatePrefix + "optim.m."
        let keys = graph.outputs.compactMap { $0.name.hasPrefix(prefix) ? String($0.name.dropFirst(prefix.count)) : nil }
        guard !keys.isEmpty else { return nil }
        let parameters = Dictionary(graph.parameterNodes.compactMap { n in n.op.parameterName.map { ($0, n.id) } },
                                    uniquingKeysWith: { first, _ in first })
        let ema = keys.allSatisfy { outputNodes[Plan.updatePrefix + "ema." + $0] != nil }

        var shared = SharedScalars()
        var perKey: [Int: PartialSegment] = [:]
        for key in keys {
            perKey[try parameter(key, parameters)] = try matchSegment(key, parameters: parameters, ema: ema, shared: &shared)
        }
        // Clip: every gradient is mul(raw, c) with one scalar c read only by this chain.
        let clipScalar = perKey.values.first?.clipCandidate?.scalar
        let clip = clipScalar != nil && perKey.values.allSatisfy { $0.clipCandidate?.scalar == clipScalar }
        let decay = shared.decay != nil
        guard let beta1 = shared.beta1, let beta2 = shared.beta2, let eps = shared.eps, let step = shared.step,
              let sqrtBias2 = shared.sqrtBias2 else { throw Refusal(reason: "no parameter update found") }

        var absorbed = Set<Int>()
        var segments: [AdamWSegment] = []
        for parameterID in try segmentOrder(Array(perKey.keys)) {
            let partial = perKey[parameterID]!
            absorbed.formUnion(partial.interior)
            var gradient = partial.scaledGradient
            if clip, let candidate = partial.clipCandidate {
                absorbed.insert(partial.scaledGradient)
                gradient = candidate.raw
            }
            segments.append(AdamWSegment(parameter: parameterID, state: partial.state, roots: partial.roots, gradient: gradient))
        }
        let roots = segments.flatMap(\.roots)
        absorbed.formUnion(roots)
        let emitAt = roots.max()!
        // Intermediates must not be read outside the update; roots only by the outputs.
        for id in absorbed {
            if let reader = consumers[id].first(where: { !absorbed.contains($0) }) {
                throw Refusal(reason: "\(node(id).op.mnemonic) of the update is also read by \(node(reader).op.mnemonic) in \(scopeName(reader))")
            }
        }
        // In place: nothing reads a parameter, moment or EMA after the update has overwritten it.
        for segment in segments {
            for state in segment.state {
                if outputIDs.contains(state) {
                    throw Refusal(reason: "\(node(state).op.parameterName ?? "a parameter") is a graph output; an in-place update would change it")
                }
                if let late = consumers[state].first(where: { $0 > emitAt && !absorbed.contains($0) }) {
                    throw Refusal(reason: "\(node(state).op.parameterName ?? "a parameter") is read by \(node(late).op.mnemonic) in \(scopeName(late)) after the update")
                }
            }
        }
        let kernel = AdamWUpdate(segments: segments.count, beta1: beta1, beta2: beta2, eps: eps, clip: clip,
                                 decay: decay, ema: ema)
        var scalars = [step, sqrtBias2]
        if clip { scalars.append(clipScalar!) }
        if let d = shared.decay { scalars.append(d) }
        if ema {
            guard let d = shared.emaDecay, let keep = shared.emaKeep else { throw Refusal(reason: "EMA scalars not found") }
            scalars += [d, keep]
        }
        return AdamWMatch(kernel: kernel, segments: segments, scalars: scalars, absorbed: absorbed, emitAt: emitAt)
    }

    private func scopeName(_ id: Int) -> String { node(id).scope.isEmpty ? "top level" : node(id).scope }

    func parameter(_ key: String, _ parameters: [String: Int]) throws -> Int {
        guard let id = parameters[key] else { throw Refusal(reason: "update.\(key) has no parameter \"\(key)\"") }
        return id
    }

    /// Parameters in layout order: graph order, except that the members of a hoisted
    /// concatenation follow each other in its order (lowering lays both out back to back).
    private func segmentOrder(_ updated: [Int]) throws -> [Int] {
        let set = Set(updated)
        var order: [Int] = []
        var placed = Set<Int>()
        let groups = PlanLowering.parameterConcats(graph)
        var groupOf: [Int: Int] = [:]
        for (concat, members) in groups { for m in members { groupOf[m] = concat } }
        for id in updated.sorted() where !placed.contains(id) {
            let members = groupOf[id].map { groups[$0]! } ?? [id]
            if let missing = members.first(where: { !set.contains($0) }) {
                throw Refusal(reason: "the hoisted concatenation of \(node(id).op.parameterName ?? "") mixes updated parameters with \(node(missing).op.parameterName ?? ""), which has no update")
            }
            order += members
            placed.formUnion(members)
        }
        return order
    }
}
