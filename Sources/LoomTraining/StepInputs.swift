import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// The random draws of one training step — data order, noise, timesteps, label dropout — each from
/// its own counter-based stream at a position fixed by the step number. A resumed run therefore
/// draws exactly what the uninterrupted run drew.
///
/// Every draw is indexed by the sample's position in the global batch, so rank r of a data-parallel
/// run (`slice`) draws exactly samples r·b ..< (r+1)·b of what one process draws for the whole batch.
public struct StepInputs {
    public let config: TrainingConfig
    public let dataset: Dataset
    public let slice: RankSlice
    let order: DataOrder

    public init(config: TrainingConfig, dataset: Dataset, slice: RankSlice = .single) throws {
        let model = config.model
        let expected = [model.inChannels, model.inputSize, model.inputSize]
        guard dataset.sampleShape == expected else {
            throw DiffusionError("data set \(dataset.source) holds samples of shape \(describeShape(dataset.sampleShape)) but the model expects \(describeShape(expected)) (set --input-size / --channels)")
        }
        guard dataset.count >= config.batch else {
            throw DiffusionError("data set \(dataset.source) has \(dataset.count) samples, fewer than one batch of \(config.batch)")
        }
        guard dataset.labels.allSatisfy({ $0 >= 0 && $0 < Int64(model.numClasses) }) else {
            throw DiffusionError("data set \(dataset.source) has labels outside 0..<\(model.numClasses) (--classes)")
        }
        self.config = config
        self.dataset = dataset
        self.slice = slice
        _ = try RankSlice.localBatch(config.batch, ranks: slice.ranks)
        order = DataOrder(BatchSampler(count: dataset.count, batchSize: config.batch, seed: config.seed))
    }

    /// Graph inputs for 0-based step `step` (the optimizer's scalars are added by the trainer):
    /// this rank's `n` samples, which start at `first` in the global batch of `global`.
    public func inputs(step: Int) throws -> [String: HostTensor] {
        let global = config.batch, model = config.model
        let n = global / slice.ranks, first = slice.rank * n
        // The sampler keeps the current epoch's permutation, so the shuffle runs once per epoch.
        order.sampler.position = UInt64(step)
        let (images, labels) = dataset.batch(indices: Array(order.sampler.next()[first..<(first + n)]))
        let pixels = images.elementCount
        var noise = stream("noise", position: UInt64(step) * UInt64(pixels * slice.ranks) + UInt64(first * pixels / n))
        let eps = HostTensor(shape: images.shape, floats: noise.normal(pixels))

        var times = stream("time", position: UInt64(step) * UInt64(global) + UInt64(first))
        var t: [Float]
        switch (config.loss.objective, config.timeSampling) {
        case (.ddpmEps, _):
            t = times.uniform(n).map { Float(min(Int($0 * 1000), 999)) }
        case (_, .uniform):
            t = times.uniform(n)
        case (_, .logitNormal):
            t = times.normal(n).map { Float(1 / (1 + Foundation.exp(-Double($0)))) }
        }
        var drop = stream("label_dropout", position: UInt64(step) * UInt64(global) + UInt64(first))
        let dropped = drop.uniform(n)
        let y = zip(labels.ints, dropped).map { $1 < config.labelDropout ? Int64(model.numClasses) : $0 }

        var inputs = ["x0": images, "eps": eps, "t": HostTensor(shape: [n], floats: t),
                      "y": HostTensor(shape: [n], ints: y)]
        if config.loss.objective == .ddpmEps {
            let schedule = DDPMSchedule()
            inputs["ddpm_coef"] = HostTensor(shape: [n, 2], floats: try schedule.noisingCoefficients(t))
            if config.loss.vbLoss {
                inputs["ddpm_vb_coef"] = HostTensor(shape: [n, DDPMSchedule.vbColumns],
                                                    floats: try schedule.variationalBoundCoefficients(t))
            }
        }
        return inputs
    }

    private func stream(_ name: String, position: UInt64) -> RandomStream {
        RandomStream(seed: config.seed, stream: RandomStream.streamID("train." + name), position: position)
    }
}

/// The data order of a run: a batch sampler whose per-epoch permutation is reused across steps.
final class DataOrder {
    var sampler: BatchSampler

    init(_ sampler: BatchSampler) { self.sampler = sampler }
}
