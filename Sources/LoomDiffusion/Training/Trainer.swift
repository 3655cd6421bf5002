import Foundation
import LoomCompiler
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
public final class Trainer {
    public let config: TrainingConfig
    public let graph: Graph
    let inputs: StepInputs
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

    /// Builds (or takes) the training graph for `config`; `state` continues a checkpoint, else the
    /// run starts fresh. With `plan`, that precompiled plan runs the steps (its table must match).
    public init(config: TrainingConfig, dataset: Dataset, state: TrainingState? = nil,
                threads: Int = Threading.defaultThreads, backend: TrainingBackend = .compiled,
                plan: Plan? = nil) throws {
        try config.validate()
        self.config = config
        let expected = try Trainer.trainingGraph(config)
        if let plan {
            try Trainer.check(plan, against: expected)
            guard plan.precision == config.resolvedPrecision else {
                throw DiffusionError("the plan was compiled for --precision \(plan.precision.rawValue), this run asks for \(config.resolvedPrecision.rawValue) (compile it with the same --precision)")
            }
        }
        graph = plan?.graph ?? expected
        // Parameters and optimizer state are held twice while loading (host tensors and the plan's
        // region): refuse before allocating anything when that cannot fit.
        let stateBytes = graph.parameterNodes.reduce(0) { $0 + storageBytes($1.type) }
        try MachineMemory.check(stateBytes, stateBytes, what: "training \(config.model.displayName) (parameters and optimizer state)")
        inputs = try StepInputs(config: config, dataset: dataset)
        let initial = state ?? TrainingState(graph: graph, seed: config.seed)
        stepCount = initial.step
        if backend == .reference && plan == nil {
            runner = ReferenceTrainingRunner(graph: graph, tensors: initial.tensors, threads: threads)
        } else {
            let executor = try PlanExecutor(plan: try plan ?? PlanCompiler.compile(graph, precision: config.resolvedPrecision),
                                        threads: threads)
            try executor.setParameters(initial.tensors)
            runner = PlanTrainingRunner(executor: executor)
        }
    }

    /// A precompiled plan must have exactly the parameter table and inputs of this run's graph.
    static func check(_ plan: Plan, against graph: Graph) throws {
        func table(_ g: Graph) -> [String: TensorType] {
            var out: [String: TensorType] = [:]
            for node in g.parameterNodes { out[node.op.parameterName!] = node.type }
            for node in g.inputNodes { if case .input(let name) = node.op { out["input " + name] = node.type } }
            return out
        }
        let (mine, theirs) = (table(graph), table(plan.graph))
        for (name, type) in mine.sorted(by: { $0.key < $1.key }) where theirs[name] != type {
            throw DiffusionError("the plan does not match this training configuration: \(name) is \(theirs[name].map { "\($0)" } ?? "missing") in the plan, \(type) here (compile it with the same model flags and --batch)")
        }
        if let extra = Set(theirs.keys).subtracting(mine.keys).sorted().first {
            throw DiffusionError("the plan does not match this training configuration: it has \(extra), which this run does not")
        }
        guard plan.graph.outputs.contains(where: { $0.name.hasPrefix(Plan.updatePrefix) }) else {
            throw DiffusionError("the plan \(plan.graph.name) is not a training step (no update.* outputs); compile it with --graph train")
        }
    }

    /// The current weights, optimizer moments, EMA and step count.
    public var state: TrainingState { TrainingState(tensors: runner.tensors(), step: stepCount) }

    /// forward + objective → autodiff → AdamW/EMA.
    public static func trainingGraph(_ config: TrainingConfig) throws -> Graph {
        let model = try DiffusionTransformer(config.model)
        let loss = try lossGraph(model, batch: config.batch, settings: config.loss)
        let gradients = try Autodiff.differentiate(loss, loss: "loss")
        var graph = try OptimizerPass.append(gradients, settings: config.optimizer)
        graph.name = model.graphName("train")
        return graph
    }

    /// Runs one step and returns its log line.
    @discardableResult
    public func step() throws -> StepLog {
        let t = stepCount + 1
        var feed = try inputs.inputs(step: stepCount)
        let lr = config.learningRate(atStep: t)
        for (name, value) in config.optimizer.stepInputs(step: t, lr: lr) { feed[name] = .scalar(value) }
        let outputs = try runner.run(feed)
        stepCount = t
        let loss = outputs["loss"]!.floats[0], gradNorm = outputs["grad_norm"]!.floats[0]
        guard loss.isFinite, gradNorm.isFinite else {
            throw DiffusionError("step \(t): the loss is \(loss) and the gradient norm \(gradNorm); the weights of this step are not saved (the last checkpoint is intact) — lower --lr or check the data")
        }
        return StepLog(step: t, loss: loss, lossFinal: outputs["loss_final"]!.floats[0],
                       lossInter: outputs["loss_inter"]?.floats[0], gradNorm: outputs["grad_norm"]!.floats[0],
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
        for (name, value) in outputs where name.hasPrefix(OptimizerPass.updatePrefix) {
            state[String(name.dropFirst(OptimizerPass.updatePrefix.count))] = value
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
