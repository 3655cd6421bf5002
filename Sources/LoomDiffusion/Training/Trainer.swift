
import Foundation
import LoomCompiler
import LoomGraphs
import LoomIR
import LoomRuntime

/// Runs training steps: one graph per step (forward, backward, AdamW + EMA update), state written
/// back from the graph's `update.*` outputs, progress printed, losses logged, checkpoints saved.
public final class Trainer {
    public let config: TrainingConfig
    public let graph: Graph
    public private(set) var state: TrainingState
    let inputs: StepInputs
    let executor: ReferenceExecutor

    /// Per-step figures.
    public struct StepLog {
        public var step: Int
        public var loss: Float
        public var lossFinal: Float
        public var lossInter: Float?
        public var gradNorm: Float
        public var learningRate: Float
    }

    /// Builds the training graph for `config`; `state` continues a checkpoint, else starts fresh.
    public init(config: TrainingConfig, dataset: Dataset, state: TrainingState? = nil,
                threads: Int = Threading.defaultThreads) throws {
        try config.validate()
        self.config = config
        graph = try Trainer.trainingGraph(config)
        inputs = try StepInputs(config: config, dataset: dataset)
        executor = ReferenceExecutor(threads: threads)
        self.state = state ?? TrainingState(graph: graph, seed: config.seed)
    }

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
        let t = state.step + 1
        var feed = try inputs.inputs(step: state.step)
        let lr = config.learningRate(atStep: t)
        for (name, value) in config.optimizer.stepInputs(step: t, lr: lr) { feed[name] = .scalar(value) }
        let outputs = try executor.run(graph, inputs: feed, parameters: state.tensors)
        for (name, value) in outputs where name.hasPrefix(OptimizerPass.updatePrefix) {
            state.tensors[String(name.dropFirst(OptimizerPass.updatePrefix.count))] = value
        }
        state.step = t
        let loss = outputs["loss"]!.floats[0]
        guard loss.isFinite else {
            throw DiffusionError("step \(t): the loss is \(loss); lower --lr or check the data")
        }
        return StepLog(step: t, loss: loss, lossFinal: outputs["loss_final"]!.floats[0],
                       lossInter: outputs["loss_inter"]?.floats[0], gradNorm: outputs["grad_norm"]!.floats[0],
                       learningRate: lr)
    }
}
