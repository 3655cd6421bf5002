import LoomIR
import LoomRuntime

/// The one owner of the order of compiler stages. Every caller that turns a graph into a plan —
/// trainer, feature classifier, sampler, benchmarks, CLI — builds a `Pipeline` from a recipe and
/// calls `compile`; nothing else assembles stages.
///
/// Stages, in order (`stageNames`): `attention-kernels` and `autodiff` (recipes that
/// differentiate), `simplify`, `hoist` (the conditioning GEMMs), `allreduce` (data-parallel
/// training: the gradients averaged over the ranks), `optimizer` (training), `fusion` and
/// `simplify-after-fusion` (unless fusion is off), `remat` (with a memory budget), `precision`,
/// `lower` and `memory-plan`. Each graph stage is verified after it ran; `lower` is checked by the
/// plan verifier after `memory-plan`. Any stage's result can be dumped (`dumpAfter`, `dumpAll`).
public struct Pipeline {
    /// What is being compiled.
    public enum Recipe: Sendable {
        /// A forward graph: model inference or a sampler step.
        case inference(precision: PrecisionPolicy, fuse: Bool)
        /// A loss graph and its gradients (`grad.*` outputs), no optimizer.
        case gradients(loss: String, precision: PrecisionPolicy, fuse: Bool)
        /// A whole training step: loss, gradients, AdamW + EMA; optionally fitted to a memory
        /// budget in bytes by rematerialisation. `dataParallel`: one rank's step of a data-parallel
        /// run, its gradients averaged over the ranks (`AllReducePass`) before the optimizer.
        case training(loss: String, optimizer: AdamWSettings, precision: PrecisionPolicy, memoryBudget: Int?, fuse: Bool,
                      dataParallel: Bool)
        /// The optimizer alone, over a graph whose `grad.*` outputs are inputs (the update of a step
        /// whose gradients were accumulated over micro-batches).
        case update(optimizer: AdamWSettings, fuse: Bool)
    }

    /// The graph after the graph stages, the plan, and the memory-budget decision.
    public struct Output {
        public var optimized: Graph
        public var plan: Plan
        public var budgetFit: BudgetFit?
    }

    public let recipe: Recipe
    /// Stages whose result is handed to `dump` (stage name, text).
    public var dumpAfter: Set<String> = []
    public var dumpAll = false
    public var dump: ((String, String) -> Void)?

    public init(_ recipe: Recipe) { self.recipe = recipe }

    /// Forward graphs (inference, sampler steps).
    public static func inference(precision: PrecisionPolicy = .fp32, fuse: Bool = true) -> Pipeline {
        Pipeline(.inference(precision: precision, fuse: fuse))
    }

    /// Loss graphs, differentiated.
    public static func gradients(loss: String = Naming.lossOutput, precision: PrecisionPolicy = .fp32,
                                 fuse: Bool = true) -> Pipeline {
        Pipeline(.gradients(loss: loss, precision: precision, fuse: fuse))
    }

    /// Loss graphs, differentiated, with the optimizer: one training step.
    public static func training(loss: String = Naming.lossOutput, optimizer: AdamWSettings, precision: PrecisionPolicy = .fp32,
                                memoryBudget: Int? = nil, fuse: Bool = true, dataParallel: Bool = false) -> Pipeline {
        Pipeline(.training(loss: loss, optimizer: optimizer, precision: precision, memoryBudget: memoryBudget, fuse: fuse,
                           dataParallel: dataParallel))
    }

    /// The optimizer alone (see `Recipe.update`).
    public static func update(optimizer: AdamWSettings, fuse: Bool = true) -> Pipeline {
        Pipeline(.update(optimizer: optimizer, fuse: fuse))
    }

    /// The graph stages of this recipe, in order.
    public var graphStages: [GraphPass] {
        var stages: [GraphPass] = []
        let (precision, fuse): (PrecisionPolicy, Bool)
        switch recipe {
        case .update(let optimizer, let f):
            stages.append(OptimizerPass(settings: optimizer, fused: f))
            if f { stages += [FusionPass(), SimplifyPass(name: "simplify-after-fusion")] }
            return stages
        case .inference(let p, let f):
            (precision, fuse) = (p, f)
        case .gradients(let loss, let p, let f), .training(let loss, _, let p, _, let f, _):
            (precision, fuse) = (p, f)
            stages += [AttentionKernelPass(), AutodiffPass(loss: loss)]
        }
        stages += [SimplifyPass(), HoistConditioningPass()]
        if case .training(_, let optimizer, _, _, _, let dataParallel) = recipe {
            if dataParallel { stages.append(AllReducePass()) }
            stages.append(OptimizerPass(settings: optimizer, fused: fuse))
        }
        if fuse { stages += [FusionPass(), SimplifyPass(name: "simplify-after-fusion")] }
        if case .training(let loss, _, _, let budget?, _, _) = recipe {
            stages.append(MemoryBudgetPass(budget: budget, lossOutput: loss))
        }
        stages.append(PrecisionPass(policy: precision))
        return stages
    }

    /// Every stage name, lowering included.
    public var stageNames: [String] { graphStages.map(\.name) + [Pipeline.lowerStage, Pipeline.memoryPlanStage] }

    public static let lowerStage = "lower"
    public static let memoryPlanStage = "memory-plan"

    /// Runs the graph stages only.
    public func optimize(_ source: Graph) throws -> (graph: Graph, budgetFit: BudgetFit?) {
        if let unknown = dumpAfter.subtracting(stageNames).sorted().first {
            throw IRError("--dump-after \(unknown): no such stage (stages: \(stageNames.joined(separator: ", ")))")
        }
        var manager = PassManager(passes: [])
        (manager.dumpAfter, manager.dumpAll, manager.dump) = (dumpAfter, dumpAll, dump)
        var graph = source
        var fit: BudgetFit?
        for stage in graphStages {
            if let budget = stage as? MemoryBudgetPass {
                graph = try manager.runOne(PassThrough(name: budget.name), graph) { g in
                    let result = try budget.fit(g)
                    fit = result.fit
                    return result.graph
                }
            } else {
                graph = try manager.runOne(stage, graph)
            }
        }
        return (graph, fit)
    }

    /// The graph after the graph stages.
    public func run(_ source: Graph) throws -> Graph { try optimize(source).graph }

    /// Every stage: the plan of `source`.
    public func compile(_ source: Graph) throws -> Output {
        let (graph, fit) = try optimize(source)
        let lowered = try PlanLowering.assignBuffers(graph)
        if wantsDump(Pipeline.lowerStage) { dump?(Pipeline.lowerStage, lowered.dump()) }
        let plan = try PlanLowering.place(lowered).plan
        do {
            try PlanVerifier.verify(plan, source: "lowering of \(graph.name)")
        } catch let error as RuntimeError {
            throw IRError("the memory plan breaks a verifier rule (a planner bug): \(error.message)")
        }
        if wantsDump(Pipeline.memoryPlanStage) { dump?(Pipeline.memoryPlanStage, plan.encoded()) }
        return Output(optimized: graph, plan: plan, budgetFit: fit)
    }

    /// The plan of `source`.
    public func plan(_ source: Graph) throws -> Plan { try compile(source).plan }

    private func wantsDump(_ stage: String) -> Bool { dumpAll || dumpAfter.contains(stage) }

    /// The differentiation stages alone (`attention-kernels`, `autodiff`): the gradient graph the
    /// pipeline starts its optimisation from, for gradient checks and goldens.
    public static func differentiate(_ graph: Graph, loss: String = Naming.lossOutput, parameters: [String]? = nil) throws -> Graph {
        try Autodiff.differentiate(try AttentionKernelPass().run(graph), loss: loss, parameters: parameters)
    }
}

/// Names a stage whose work the pipeline does itself (to keep its side results).
private struct PassThrough: GraphPass {
    let name: String
    func run(_ graph: Graph) throws -> Graph { graph }
}
