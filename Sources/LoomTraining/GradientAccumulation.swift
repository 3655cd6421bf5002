import Foundation
import LoomCompiler
import LoomDistributed
import LoomGraphs
import LoomIR
import LoomRuntime

/// `--accumulate K`: a step's batch in K micro-batches, for a machine whose memory holds the
/// activations of only B/K samples. Two plans: the gradients of one micro-batch (the pipeline's
/// `gradients` recipe at B/K, or B/(ranks·K) under mpirun) and the update alone (the `update` recipe:
/// clip, AdamW and EMA over a graph whose gradients are inputs). Per step the gradient plan runs on
/// micro-batches `0..<K` of the step's batch (consecutive samples, the same counter-based draws as one
/// step of B), the gradients are averaged on the host (and over the ranks), the update plan applies
/// them, and the new weights go back into the gradient plan. The result is that of one step of B, to
/// float rounding (sums in another order).
final class AccumulatingTrainingRunner: TrainingStepRunner {
    let gradients: PlanExecutor
    let update: PlanExecutor
    let communicator: Communicator
    /// Trainable parameter keys and types, in the gradient plan's order.
    let trainable: [(key: String, type: TensorType)]

    init(gradients: Plan, update: Plan, tensors: [String: HostTensor], threads: Int, communicator: Communicator) throws {
        self.gradients = try PlanExecutor(plan: gradients, threads: threads)
        self.update = try PlanExecutor(plan: update, threads: threads)
        self.communicator = communicator
        trainable = gradients.graph.parameterNodes.compactMap { node in
            if case .parameter(let key, _, true) = node.op { return (key, node.type) } else { return nil }
        }
        try self.gradients.setParameters(tensors, ignoringExtra: true)
        try self.update.setParameters(tensors, ignoringExtra: true)
    }

    /// Unused: an accumulated step needs its micro-batches (`run(micro:scalars:)`).
    func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor] { try run(micro: [inputs], scalars: [:]) }

    /// One step: every micro-batch's gradients, averaged, then the update. Returns the mean losses
    /// over the micro-batches and the update's outputs (the gradient norm).
    func run(micro feeds: [[String: HostTensor]], scalars: [String: HostTensor]) throws -> [String: HostTensor] {
        // One flat buffer of every gradient, in `trainable` order: summed over the micro-batches,
        // averaged, then averaged over the ranks in one exchange.
        let total = trainable.reduce(0) { $0 + $1.type.elementCount }
        var flat = [Float](repeating: 0, count: total)
        var losses: [String: Float] = [:]
        for feed in feeds {
            let out = try gradients.run(inputs: feed)
            var offset = 0
            for (key, type) in trainable {
                let g = out[Naming.gradientPrefix + key]!.floats
                for i in 0..<g.count { flat[offset + i] += g[i] }
                offset += type.elementCount
            }
            for name in [Naming.lossOutput, Naming.finalLossOutput, Naming.intermediateLossOutput] {
                if let value = out[name]?.floats.first { losses[name, default: 0] += value }
            }
        }
        let k = Float(feeds.count)
        for i in flat.indices { flat[i] /= k }
        if communicator.size > 1 { flat = try communicator.allReduceMean(flat) }
        var feed = scalars
        var offset = 0
        for (key, type) in trainable {
            feed[Naming.gradientPrefix + key] = HostTensor(shape: type.shape, floats: Array(flat[offset..<(offset + type.elementCount)]))
            offset += type.elementCount
        }
        var outputs = try update.run(inputs: feed)
        try gradients.setParameters(update.parameters(), ignoringExtra: true, partial: true)
        for (name, sum) in losses { outputs[name] = .scalar(sum / k) }
        return outputs
    }

    func tensors() -> [String: HostTensor] {
        gradients.parameters().merging(update.parameters()) { _, updated in updated }
    }

    /// The update graph of a gradient graph: every trainable parameter, with input `grad.<key>` as
    /// its gradient (an output of the same name, which the optimizer stage reads).
    static func updateGraph(_ gradientGraph: Graph, name: String) throws -> Graph {
        let b = GraphBuilder(name: name)
        b.withScope("") {
            for node in gradientGraph.parameterNodes {
                guard case .parameter(let key, let initializer, true) = node.op else { continue }
                _ = b.parameter(key, node.type.shape, initializer: initializer)
                b.output(Naming.gradientPrefix + key, b.input(Naming.gradientPrefix + key, node.type))
            }
        }
        return try b.build()
    }
}
