import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// Model weights (official keys) read from a `loom train` checkpoint, with its training config.
public struct CheckpointWeights {
    public var config: TrainingConfig
    public var weights: [String: HostTensor]
    public var step: Int

    public init(config: TrainingConfig, weights: [String: HostTensor], step: Int) {
        (self.config, self.weights, self.step) = (config, weights, step)
    }

    /// Reads `path`; with `ema`, the EMA copy replaces each weight that has one.
    public static func load(path: String, ema: Bool) throws -> CheckpointWeights {
        let file = try SafeTensors.read(path: path)
        let config = try TrainingState.config(of: file, path: path)
        var weights: [String: HostTensor] = [:]
        for (name, value) in file.tensors
        where !name.hasPrefix(Naming.optimizerPrefix) && !name.hasPrefix(Naming.emaPrefix) && name != TrainingState.stepTensor {
            weights[name] = (ema ? file.tensors[Naming.emaPrefix + name] : nil) ?? value
        }
        let step = Int(file.tensors[TrainingState.stepTensor]?.ints.first ?? 0)
        return CheckpointWeights(config: config, weights: weights, step: step)
    }
}

/// One sampling run: labels split into batches, each batch integrated by `SamplerLoop` on compiled
/// step plans (or the reference executor), results concatenated in label order.
public struct SamplingJob {
    public var model: ModelConfig
    public var weights: [String: HostTensor]
    /// Autoguidance: the weaker model and its weights (official keys; prefixed `guide.` here).
    public var guide: (ModelConfig, [String: HostTensor])?
    public var sampler: SamplerSettings
    public var guidance: GuidanceSettings
    public var batch: Int
    public var seed: UInt64
    public var threads: Int
    public var reference: Bool
    /// Operand precision of the step plans' matrix products.
    public var precision: PrecisionPolicy

    public init(model: ModelConfig, weights: [String: HostTensor], guide: (ModelConfig, [String: HostTensor])? = nil,
                sampler: SamplerSettings, guidance: GuidanceSettings, batch: Int, seed: UInt64,
                threads: Int = Threading.defaultThreads, reference: Bool = false, precision: PrecisionPolicy = .fp32) {
        self.precision = precision
        self.model = model
        self.weights = weights
        self.guide = guide
        self.sampler = sampler
        self.guidance = guidance
        self.batch = batch
        self.seed = seed
        self.threads = threads
        self.reference = reference
    }

    /// The step runner for this job's model, guidance and batch size.
    public func makeRunner() throws -> StepRunner {
        let network = try DiffusionTransformer(model)
        let guideNetwork = try guide.map { try DiffusionTransformer($0.0) }
        var parameters = weights
        for (name, value) in guide?.1 ?? [:] { parameters["guide." + name] = value }
        if reference {
            return try ReferenceStepRunner(model: network, guideModel: guideNetwork, batch: batch, guidance: guidance,
                                           learnedVariance: sampler.learnedVariance, parameters: parameters,
                                           threads: threads)
        }
        return try PlanStepRunner(model: network, guideModel: guideNetwork, batch: batch, guidance: guidance,
                                  learnedVariance: sampler.learnedVariance, parameters: parameters, threads: threads,
                                  precision: precision)
    }

    /// Samples one image per label; `initialNoise` ([N, C, H, W]) replaces the seeded noise. The
    /// labels are images `firstSample…` of the run: their noise is that of those indices, whatever
    /// the batch split (`SamplerLoop`). With `stopOnInterruption`, Ctrl-C / SIGTERM (`Interruption`)
    /// ends the run between two batches with `Interruption.Stopped`.
    public func run(labels: [Int64], firstSample: Int = 0, initialNoise: HostTensor? = nil, stopOnInterruption: Bool = false,
                    progress: ((Int, SamplerProgress) -> Void)? = nil) throws -> HostTensor {
        guard batch > 0 else { throw DiffusionError("--batch must be positive, got \(batch)") }
        for (i, label) in labels.enumerated() where label < 0 || label > Int64(model.numClasses) {
            throw DiffusionError("label \(label) at position \(i) is outside 0…\(model.numClasses) (\(model.numClasses) is the null label)")
        }
        try guidance.validate(outChannels: model.outChannels)
        if guidance.mode.usesIG && model.igLayer == nil {
            throw DiffusionError("guidance \(guidance.mode.rawValue) needs a model with an IG head (this checkpoint has none)")
        }
        if guidance.mode.usesGuideNetwork && guide == nil {
            throw DiffusionError("autoguidance needs a guide model (--guide-checkpoint)")
        }
        let sampleShape = [model.inChannels, model.inputSize, model.inputSize]
        if let initialNoise, initialNoise.shape != [labels.count] + sampleShape {
            throw DiffusionError("--init-noise holds \(describeShape(initialNoise.shape)), expected \(describeShape([labels.count] + sampleShape))")
        }
        guard let outputElements = SizeLimits.elementCount([labels.count] + sampleShape) else {
            throw DiffusionError("\(labels.count) samples of \(describeShape(sampleShape)) exceed Loom's limit of 2^40 values")
        }
        try MachineMemory.check(outputElements * 4, what: "\(labels.count) samples of \(describeShape(sampleShape))")
        let loop = try SamplerLoop(settings: sampler, guidance: guidance, sampleShape: sampleShape)
        let runner = try makeRunner()
        let per = sampleShape.reduce(1, *)
        var out = [Float]()
        out.reserveCapacity(labels.count * per)
        var start = 0
        while start < labels.count {
            if stopOnInterruption && Interruption.requested {
                throw Interruption.Stopped("sampling stopped after \(start) of \(labels.count) images")
            }
            let count = min(batch, labels.count - start)
            // Pad the last batch to the plan's batch size with the null label; the extras are dropped.
            let chunk = Array(labels[start..<(start + count)]) + [Int64](repeating: Int64(model.numClasses), count: batch - count)
            var noise: HostTensor?
            if let initialNoise {
                var values = Array(initialNoise.floats[(start * per)..<((start + count) * per)])
                values += [Float](repeating: 0, count: (batch - count) * per)
                noise = HostTensor(shape: [batch] + sampleShape, floats: values)
            }
            let x = try loop.sample(runner: runner, labels: chunk, seed: seed, firstSample: firstSample + start, initialNoise: noise) {
                progress?(start, $0)
            }
            out += x.floats[0..<(count * per)]
            start += count
        }
        return HostTensor(shape: [labels.count] + sampleShape, floats: out)
    }
}
