import LoomIR

/// The optimizer stage: appends global gradient-norm clipping, AdamW (bias corrected, decoupled
/// weight decay) and the EMA update to a differentiated graph, in scope `optimizer`.
///
/// State lives in buffers `optim.m.<key>`, `optim.v.<key>`, `ema.<key>` (`Naming`); every new value
/// is an output `update.<key>`. Run-time scalars (`AdamWSettings.stepInputs`) are graph inputs.
///
/// `fused` emits the update as the two kernels it runs as: `sum_squares` over every gradient and
/// one `adamw` launch whose result is the new state `[p | m | v | ema]`, each `update.*` output a
/// slice of it (lowering lays that state out back to back, so the kernel updates it in place).
/// Unfused, every formula is written in primitive ops: the reference the fused kernels are tested
/// against. The fused form needs every updated parameter private to the step: when one is also a
/// graph output it falls back to the primitive form and says why in a remark.
public struct OptimizerPass: GraphPass {
    public var name: String { "optimizer" }
    public var settings: AdamWSettings
    public var fused: Bool
    /// Keep the `grad.*` outputs next to the updates.
    public var keepGradients: Bool

    public init(settings: AdamWSettings, fused: Bool = true, keepGradients: Bool = false) {
        self.settings = settings
        self.fused = fused
        self.keepGradients = keepGradients
    }

    /// The graph with the optimizer appended (see the type's description).
    public static func append(_ graph: Graph, settings: AdamWSettings, fused: Bool = false,
                              keepGradients: Bool = false) throws -> Graph {
        try OptimizerPass(settings: settings, fused: fused, keepGradients: keepGradients).run(graph)
    }

    public func run(_ graph: Graph) throws -> Graph {
        let gradients = graph.outputs.compactMap { output -> (key: String, node: Int)? in
            Naming.strip(Naming.gradientPrefix, from: output.name).map { ($0, output.node) }
        }
        guard !gradients.isEmpty else {
            throw IRError("optimizer: graph \(graph.name) has no \(Naming.gradientPrefix)* outputs; run autodiff first")
        }
        let parameters = Dictionary(graph.parameterNodes.compactMap { n in n.op.parameterName.map { ($0, n.id) } },
                                    uniquingKeysWith: { first, _ in first })
        var targets: [OptimizerTarget] = []
        for (key, gradient) in gradients {
            guard let parameter = parameters[key] else {
                throw IRError("optimizer: output \(Naming.gradientPrefix)\(key) has no parameter \"\(key)\"")
            }
            targets.append(OptimizerTarget(key: key, parameter: parameter, gradient: gradient))
        }
        var remarks: [String] = []
        var useFused = fused
        let outputIDs = Set(graph.outputs.map(\.node))
        if fused, let exposed = targets.first(where: { outputIDs.contains($0.parameter) }) {
            useFused = false
            remarks.append("fusion refused: adamw in optimizer: \(exposed.key) is a graph output; an in-place update would change it")
        }
        let b = GraphBuilder(extending: graph)
        let scalars = b.scoped(Naming.optimizerScope) { OptimizerScalars(b, settings: settings) }
        let updates: [(String, Tensor)]
        if useFused {
            let ordered = try OptimizerPass.layoutOrder(targets, graph: graph)
            updates = b.scoped(Naming.optimizerScope) { OptimizerEmitter(b, settings, scalars).fused(ordered) }
        } else {
            updates = b.scoped(Naming.optimizerScope) { OptimizerEmitter(b, settings, scalars).primitive(targets) }
        }
        var result = try b.build()
        if !keepGradients { result.outputs.removeAll { $0.name.hasPrefix(Naming.gradientPrefix) } }
        for (name, tensor) in updates {
            let outputName = name == Naming.gradientNormOutput ? name : Naming.updatePrefix + name
            result.outputs.append(GraphOutput(name: outputName, node: tensor.id))
        }
        result.refreshRoles()
        result.remarks += remarks
        try Verifier.verify(result)
        return result
    }

    /// Parameters in the order lowering lays the optimizer state out: graph order, except that the
    /// members of a concatenation of parameters (the hoisted conditioning GEMM's weights) follow
    /// each other in its order, since lowering makes that concatenation a view of them.
    static func layoutOrder(_ targets: [OptimizerTarget], graph: Graph) throws -> [OptimizerTarget] {
        let byParameter = Dictionary(targets.map { ($0.parameter, $0) }, uniquingKeysWith: { first, _ in first })
        let groups = PlanLowering.parameterConcats(graph)
        var groupOf: [Int: Int] = [:]
        for (concat, members) in groups { for m in members { groupOf[m] = concat } }
        var order: [OptimizerTarget] = []
        var placed = Set<Int>()
        for id in byParameter.keys.sorted() where !placed.contains(id) {
            let members = groupOf[id].map { groups[$0]! } ?? [id]
            for member in members {
                guard let target = byParameter[member] else {
                    let name = graph.nodes[member].op.parameterName ?? "%\(member)"
                    throw IRError("optimizer: the concatenation of \(byParameter[id]!.key) with \(name) mixes updated parameters with one that has no gradient")
                }
                order.append(target)
            }
            placed.formUnion(members)
        }
        return order
    }
}

/// One parameter the optimizer updates.
struct OptimizerTarget {
    var key: String
    var parameter: Int
    var gradient: Int
}

/// The step's shared scalars, built from the run-time inputs (all rank 0).
struct OptimizerScalars {
    let lr: Tensor, bias1: Tensor, bias2: Tensor, clip: Tensor, weightDecay: Tensor
    let emaDecay: Tensor?

    init(_ b: GraphBuilder, settings: AdamWSettings) {
        let scalar = TensorType(.f32, [])
        lr = b.input(Naming.learningRateInput, scalar)
        bias1 = b.input(Naming.firstBiasInput, scalar)
        bias2 = b.input(Naming.secondBiasInput, scalar)
        clip = b.input(Naming.clipInput, scalar)
        weightDecay = b.input(Naming.weightDecayInput, scalar)
        emaDecay = settings.emaDecay.map { _ in b.input(Naming.emaDecayInput, scalar) }
    }

    /// `min(1, clip / (‖g‖ + 1e-6))`, PyTorch's `clip_grad_norm_` factor (exactly 1 for clip = ∞).
    func clipFactor(norm: Tensor) -> Tensor {
        ((norm + 1e-6).unary(.recip) * clip).minimum(norm.builder.constant(1))
    }

    /// `lr / (1 − β₁ᵗ)`.
    var stepSize: Tensor { lr / bias1 }
    /// `1 − lr·wd`.
    var decayFactor: Tensor { 1 - lr * weightDecay }
}
