import Foundation
import LoomCompiler
import LoomData
import LoomDistributed
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// How training steps are executed.
public enum TrainingBackend: String, CaseIterable, Sendable {
    /// The compiled plan (fusion, memory plan, in-place updates): the default.
    case compiled
    /// The reference executor, node by node (ground truth; slow).
    case reference
}

/// Runs training steps: one graph per step (forward, backward, AdamW + EMA update); the new
/// weights and optimizer state come back through the graph's `update.*` outputs.
///
/// Data parallel (`communicator` of more than one rank): each rank runs the step compiled for
/// `batch / ranks` samples on its slice of the global batch; the plan's `allreduce` averages the
/// gradients, so every rank applies the same update and holds the same weights. Losses are averaged
/// over the ranks before they are reported.
public final class Trainer {
    public let config: TrainingConfig
    public let graph: Graph
    public let communicator: Communicator
    let inputs: StepInputs
    /// With `--accumulate K`: the K micro-batches of each step.
    let microInputs: [StepInputs]
    let runner: TrainingStepRunner
    public private(set) var stepCount: Int

    /// Per-step figures.
    public struct StepLog {
        public var step: Int
        public var loss: Float
        public var lossFinal: Float
        public var lossInter: Float?
        public var gradNorm: Float
        public var learningRate: Float
    }

    /// Compiles the training step for `config` (or takes `plan`, checked against `config` by its
    /// header alone: no tracing, no autodiff). `state` continues a checkpoint, else the run starts
    /// fresh. `planSource` names the plan in errors.
    public init(config: TrainingConfig, dataset: Dataset, state: TrainingState? = nil,
                threads: Int = Threading.defaultThreads, backend: TrainingBackend = .compiled,
                plan: Plan? = nil, planSource: String = "the plan", communicator: Communicator = SingleProcess()) throws {
        try config.validate()
        self.config = config
        self.communicator = communicator
        let ranks = communicator.size
        _ = try config.rankStep(ranks: ranks)
        if ranks > 1 && backend == .reference {
            throw DiffusionError("--reference runs one process; start it without mpirun (this run has \(ranks) ranks)")
        }
        let accumulate = config.accumulate ?? 1
        if accumulate > 1 {
            guard plan == nil, backend == .compiled else {
                throw DiffusionError("--accumulate runs its own two plans (gradients, update): it takes no --plan and no --reference")
            }
            _ = try RankSlice.localBatch(config.batch, ranks: ranks * accumulate)
            let gradientPlan = try Trainer.microBatchGradientPlan(config, ranks: ranks)
            let updatePlan = try Pipeline.update(optimizer: config.optimizer).plan(
                try AccumulatingTrainingRunner.updateGraph(gradientPlan.graph, name: gradientPlan.graph.name + "_update"))
            graph = try Trainer.stateGraph(gradientPlan.graph, updatePlan.graph)
            let data = config.limit.map { dataset.prefix($0) } ?? dataset
            inputs = try StepInputs(config: config, dataset: data, slice: RankSlice(rank: communicator.rank, ranks: ranks))
            microInputs = try (0..<accumulate).map { k in
                try StepInputs(config: config, dataset: data, slice: RankSlice(rank: communicator.rank * accumulate + k,
                                                                               ranks: ranks * accumulate))
            }
            let initial = state ?? TrainingState(graph: graph, seed: config.seed)
            try initial.checkTable(against: graph)
            stepCount = initial.step
            runner = try AccumulatingTrainingRunner(gradients: gradientPlan, update: updatePlan, tensors: initial.tensors,
                                                    threads: threads, communicator: communicator)
            return
        }
        microInputs = []
        let compiled: Plan?
        if let plan {
            try TrainingPlanHeader.check(plan, source: planSource, against: config, ranks: ranks)
            compiled = plan
        } else {
            compiled = backend == .compiled ? try Trainer.trainingPlan(config, ranks: ranks) : nil
        }
        graph = try compiled?.graph ?? Trainer.referenceGraph(config)
        // Parameters and optimizer state are held twice while loading (host tensors and the plan's
        // region): refuse before allocating anything when that cannot fit.
        let stateBytes = graph.parameterNodes.reduce(0) { $0 + storageBytes($1.type) }
        try MachineMemory.check(stateBytes, stateBytes, what: "training \(config.model.displayName) (parameters and optimizer state)")
        inputs = try StepInputs(config: config, dataset: config.limit.map { dataset.prefix($0) } ?? dataset,
                                slice: RankSlice(rank: communicator.rank, ranks: ranks))
        let initial = state ?? TrainingState(graph: graph, seed: config.seed)
        try initial.checkTable(against: graph)
        stepCount = initial.step
        if let compiled {
            let executor = try PlanExecutor(plan: compiled, threads: threads, communicator: communicator)
            try executor.setParameters(initial.tensors)
            runner = PlanTrainingRunner(executor: executor)
        } else {
            runner = ReferenceTrainingRunner(graph: graph, tensors: initial.tensors, threads: threads)
        }
    }

    /// The forward pass and objective: the source graph every training step is compiled from
    /// (one rank's share of the batch when `ranks` > 1).
    public static func lossGraph(_ config: TrainingConfig, ranks: Int = 1) throws -> Graph {
        let local = try config.rankStep(ranks: ranks)
        return try objectiveGraph(try DiffusionTransformer(config.model), batch: local.batch, settings: config.loss)
    }

    /// The compiler pipeline of `config`'s training step; over more than one rank it averages the
    /// gradients (`allreduce` stage).
    public static func pipeline(_ config: TrainingConfig, memoryBudget: Int? = nil, fuse: Bool = true, ranks: Int = 1) -> Pipeline {
        .training(optimizer: config.optimizer, precision: config.resolvedPrecision, memoryBudget: memoryBudget, fuse: fuse,
                  dataParallel: ranks > 1)
    }

    /// The compiled training step (one rank's, over `ranks`), its header carrying `config`
    /// (`TrainingPlanHeader`).
    public static func trainingPlan(_ config: TrainingConfig, memoryBudget: Int? = nil, fuse: Bool = true,
                                    ranks: Int = 1) throws -> Plan {
        try compile(config, pipeline: pipeline(config, memoryBudget: memoryBudget, fuse: fuse, ranks: ranks), ranks: ranks).plan
    }

    /// Runs `pipeline` on `config`'s loss graph (one rank's share over `ranks`) and stamps the
    /// plan's header.
    public static func compile(_ config: TrainingConfig, pipeline: Pipeline, ranks: Int = 1) throws -> Pipeline.Output {
        var source = try lossGraph(config, ranks: ranks)
        source.name = try DiffusionTransformer(config.model).graphName("train")
        var output = try pipeline.compile(source)
        output.plan.metadata = TrainingPlanHeader.metadata(for: config, ranks: ranks)
        return output
    }

    /// The optimised training step graph (the compiled plan's graph): its parameter table is the
    /// checkpoint's.
    public static func trainingGraph(_ config: TrainingConfig) throws -> Graph {
        try trainingPlan(config).graph
    }

    /// The gradients of one micro-batch of an accumulated step (`batch / (ranks · accumulate)`).
    public static func microBatchGradientPlan(_ config: TrainingConfig, ranks: Int = 1) throws -> Plan {
        let k = config.accumulate ?? 1
        var local = config
        local.batch = try RankSlice.localBatch(config.batch, ranks: ranks * k)
        var source = try objectiveGraph(try DiffusionTransformer(config.model), batch: local.batch, settings: config.loss)
        source.name = try DiffusionTransformer(config.model).graphName("grad_micro")
        return try Pipeline.gradients(precision: config.resolvedPrecision).plan(source)
    }

    /// Every persistent tensor of an accumulated run: the model's parameters and buffers (gradient
    /// plan) and the optimizer's state (update plan), for checkpoints and initialisation.
    static func stateGraph(_ gradients: Graph, _ update: Graph) throws -> Graph {
        let b = GraphBuilder(name: gradients.name + "_state")
        var first: Tensor?
        var seen = Set<String>()
        b.withScope("") {
            for node in gradients.parameterNodes + update.parameterNodes {
                guard case .parameter(let key, let initializer, let trainable) = node.op, seen.insert(key).inserted else { continue }
                let p = b.parameter(key, node.type.shape, initializer: initializer, trainable: trainable)
                if first == nil { first = p }
            }
        }
        if let first { b.output("state", first) }
        return try b.build()
    }

    /// The step in primitive ops for the reference executor: differentiated, the optimizer
    /// unfused, no kernel fusion.
    public static func referenceGraph(_ config: TrainingConfig) throws -> Graph {
        try pipeline(config, fuse: false).optimize(try lossGraph(config)).graph
    }

    /// The current weights, optimizer moments, EMA and step count.
    public var state: TrainingState { TrainingState(tensors: runner.tensors(), step: stepCount) }

    /// Runs one step and returns its log line.
    @discardableResult
    public func step() throws -> StepLog {
        let t = stepCount + 1
        let lr = config.learningRate(atStep: t)
        var scalars: [String: HostTensor] = [:]
        for (name, value) in config.optimizer.stepInputs(step: t, lr: lr) { scalars[name] = .scalar(value) }
        // The batch (or one micro-batch) of this step with the loss weights λ, ω.
        func batch(_ slice: StepInputs) throws -> [String: HostTensor] {
            var feed = try slice.inputs(step: stepCount)
            if config.model.igLayer != nil {
                for (name, value) in config.loss.runtimeInputs { feed[name] = .scalar(value) }
            }
            return feed
        }
        let outputs: [String: HostTensor]
        if let accumulating = runner as? AccumulatingTrainingRunner {
            outputs = try accumulating.run(micro: try microInputs.map(batch), scalars: scalars)
        } else {
            outputs = try runner.run(try batch(inputs).merging(scalars) { _, scalar in scalar })
        }
        stepCount = t
        let inter = outputs[Naming.intermediateLossOutput]?.floats[0]
        // This rank's mean losses → the global batch's (equal slices: the mean of the means).
        let losses = try communicator.allReduceMean([outputs[Naming.lossOutput]!.floats[0],
                                                     outputs[Naming.finalLossOutput]!.floats[0], inter ?? 0])
        let loss = losses[0], gradNorm = outputs[Naming.gradientNormOutput]!.floats[0]
        guard loss.isFinite, gradNorm.isFinite else {
            throw DiffusionError("step \(t): the loss is \(loss) and the gradient norm \(gradNorm); the weights of this step are not saved (the last checkpoint is intact) — lower --lr or check the data")
        }
        return StepLog(step: t, loss: loss, lossFinal: losses[1], lossInter: inter.map { _ in losses[2] }, gradNorm: gradNorm,
                       learningRate: lr)
    }
}

/// Executes the training graph and keeps the persistent tensors.
protocol TrainingStepRunner: AnyObject {
    func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor]
    func tensors() -> [String: HostTensor]
}

/// Node-by-node reference execution; updates applied from the `update.*` outputs.
final class ReferenceTrainingRunner: TrainingStepRunner {
    let graph: Graph
    var state: [String: HostTensor]
    let executor: ReferenceExecutor

    init(graph: Graph, tensors: [String: HostTensor], threads: Int) {
        self.graph = graph
        state = tensors
        executor = ReferenceExecutor(threads: threads)
    }

    func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor] {
        let outputs = try executor.run(graph, inputs: inputs, parameters: state)
        for (name, value) in outputs {
            if let key = Naming.strip(Naming.updatePrefix, from: name) { state[key] = value }
        }
        return outputs
    }

    func tensors() -> [String: HostTensor] { state }
}

/// A compiled plan; the weights live in its parameter region and are updated in place.
final class PlanTrainingRunner: TrainingStepRunner {
    let executor: PlanExecutor

    init(executor: PlanExecutor) { self.executor = executor }

    func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor] { try executor.run(inputs: inputs) }

    func tensors() -> [String: HostTensor] { executor.parameters() }
}
