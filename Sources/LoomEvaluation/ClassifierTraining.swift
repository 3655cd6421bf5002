import Foundation
import LoomCompiler
import LoomData
import LoomIR
import LoomRuntime

/// How the feature classifier is trained: AdamW with linear warm-up then cosine decay, label
/// smoothing, and random horizontal flips plus ±`shift`-pixel translations of the inputs.
public struct ClassifierTrainingSettings: Equatable, Sendable {
    public var epochs: Int = 15
    public var batch: Int = 128
    /// Cap on the number of steps (nil: `epochs` full passes).
    public var maxSteps: Int? = nil
    public var learningRate: Float = 2e-3
    /// Floor of the cosine decay, as a fraction of `learningRate`.
    public var finalLearningRateFraction: Float = 0.02
    public var warmupSteps: Int = 200
    public var weightDecay: Float = 0.05
    public var clipNorm: Float? = 1
    /// Targets are `(1 − ε)·onehot + ε/classes`.
    public var labelSmoothing: Float = 0.1
    /// Random horizontal flips and translations.
    public var augment = true
    /// Maximum translation in pixels (each axis), when augmenting.
    public var shift = 2
    public var seed: UInt64 = 0

    public init() {}

    public func validate() throws {
        guard epochs > 0 || (maxSteps ?? 0) > 0 else { throw DiffusionError("classifier training: epochs must be positive") }
        guard batch > 0 else { throw DiffusionError("classifier training: batch must be positive") }
        guard learningRate > 0, learningRate.isFinite else { throw DiffusionError("classifier training: learning rate must be positive") }
        guard labelSmoothing >= 0, labelSmoothing < 1 else { throw DiffusionError("classifier training: label smoothing must be in [0, 1)") }
        guard shift >= 0 else { throw DiffusionError("classifier training: shift must be ≥ 0") }
    }

    /// Total steps for a training set of `count` images.
    public func totalSteps(trainCount: Int) -> Int {
        let perEpoch = max(1, trainCount / batch)
        let full = epochs * perEpoch
        if let maxSteps { return epochs > 0 ? min(full, maxSteps) : maxSteps }
        return full
    }

    /// Learning rate at 1-based step `t` of `total`: linear warm-up over `warmupSteps` (capped
    /// at a fifth of the run, so short runs still reach the peak), then cosine decay to
    /// `finalLearningRateFraction·learningRate` at step `total`.
    public func learningRate(atStep t: Int, total: Int) -> Float {
        let warmup = min(warmupSteps, max(1, total / 5))
        if warmupSteps > 0 && t <= warmup { return learningRate * Float(t) / Float(warmup) }
        let span = max(1, total - warmup)
        let progress = min(1, Double(t - warmup) / Double(span))
        let floor = Double(finalLearningRateFraction)
        let factor = floor + (1 - floor) * 0.5 * (1 + cos(Double.pi * progress))
        return learningRate * Float(factor)
    }

    var optimizer: AdamWSettings {
        var settings = AdamWSettings()
        settings.weightDecay = weightDecay
        settings.clipNorm = clipNorm
        settings.emaDecay = nil
        return settings
    }
}

/// A progress report of classifier training.
public struct ClassifierTrainingProgress: Sendable {
    public var step: Int
    public var totalSteps: Int
    /// The epoch in progress, 1-based.
    public var epoch: Int
    /// Mean loss and training accuracy over the steps since the previous report.
    public var loss: Float
    public var accuracy: Float
    public var learningRate: Float
    public var elapsed: Double
}

/// Trains the feature classifier with a compiled training-step plan (forward, backward, AdamW
/// in one plan; weights updated in place).
public final class ClassifierTrainer {
    public let config: FeatureClassifierConfig
    public let settings: ClassifierTrainingSettings
    let executor: PlanExecutor
    public private(set) var stepCount = 0
    /// Learning-rate schedule length (set by `train`, or by the caller before stepping by hand).
    public var scheduleSteps: Int

    public init(config: FeatureClassifierConfig = .standard, settings: ClassifierTrainingSettings = ClassifierTrainingSettings(),
                threads: Int = Threading.defaultThreads, initialWeights: [String: HostTensor]? = nil) throws {
        try config.validate()
        try settings.validate()
        self.config = config
        self.settings = settings
        scheduleSteps = settings.maxSteps ?? 1000
        let plan = try FeatureClassifier.trainingPlan(config, batch: settings.batch, optimizer: settings.optimizer)
        executor = try PlanExecutor(plan: plan, threads: threads)
        var state = ParameterInitializer.initialize(plan.graph, seed: settings.seed)
        if let initialWeights {
            for (name, value) in initialWeights where state[name] != nil {
                guard state[name]!.type == value.type else {
                    throw DiffusionError("classifier: initial weight \(name) is \(value.type), expected \(state[name]!.type)")
                }
                state[name] = value
            }
        }
        try executor.setParameters(state)
    }

    /// A feature extractor over the current weights (compiles an inference plan).
    public func extractor(batch: Int = 250, threads: Int = Threading.defaultThreads) throws -> FeatureExtractor {
        try FeatureExtractor(weights: weights(), batch: batch, threads: threads)
    }

    /// The current model weights (no optimizer state).
    public func weights(metadata: [String: String] = [:]) throws -> ClassifierWeights {
        try ClassifierWeights(config: config, tensors: executor.parameters(), metadata: metadata)
    }

    /// Soft targets for `labels` with the configured label smoothing, [B, classes] flattened.
    func targets(_ labels: [Int64]) -> [Float] {
        let k = config.numClasses, eps = settings.labelSmoothing
        var out = [Float](repeating: eps / Float(k), count: labels.count * k)
        for (i, label) in labels.enumerated() { out[i * k + Int(label)] += 1 - eps }
        return out
    }

    /// One optimizer step on a batch (`images` [batch, C, S, S], labels in 0..<classes), already
    /// augmented if desired. Returns the batch loss and training accuracy.
    @discardableResult
    public func step(images: HostTensor, labels: [Int64]) throws -> (loss: Float, accuracy: Float) {
        guard labels.count == settings.batch else {
            throw DiffusionError("classifier step: \(labels.count) labels for a batch of \(settings.batch)")
        }
        let t = stepCount + 1
        let lr = settings.learningRate(atStep: t, total: scheduleSteps)
        var feed: [String: HostTensor] = ["images": images,
                                          "targets": HostTensor(shape: [labels.count, config.numClasses], floats: targets(labels))]
        for (name, value) in settings.optimizer.stepInputs(step: t, lr: lr) { feed[name] = .scalar(value) }
        let outputs = try executor.run(inputs: feed)
        stepCount = t
        let loss = outputs[Naming.lossOutput]!.floats[0]
        guard loss.isFinite else { throw DiffusionError("classifier step \(t): the loss is \(loss); lower the learning rate") }
        let predicted = ConditionalAccuracy.argmax(outputs["logits"]!.floats, classes: config.numClasses)
        let hits = zip(predicted, labels).reduce(0) { $0 + (Int64($1.0) == $1.1 ? 1 : 0) }
        return (loss, Float(hits) / Float(labels.count))
    }

    /// Trains on `dataset` for the configured epochs (or `maxSteps`), reporting every
    /// `reportEvery` steps and at the end; `epochEnd` runs after each full epoch (with its
    /// 1-based number), e.g. to measure test accuracy. Returns the number of steps taken.
    @discardableResult
    public func train(on dataset: Dataset, reportEvery: Int = 100,
                      progress: ((ClassifierTrainingProgress) -> Void)? = nil,
                      epochEnd: ((Int) throws -> Void)? = nil) throws -> Int {
        guard dataset.sampleShape == [config.channels, config.imageSize, config.imageSize] else {
            throw DiffusionError("classifier training: images are \(describeShape(dataset.sampleShape)), the classifier expects "
                                 + describeShape([config.channels, config.imageSize, config.imageSize]))
        }
        guard dataset.count >= settings.batch else {
            throw DiffusionError("classifier training: \(dataset.count) images are fewer than one batch of \(settings.batch)")
        }
        let total = settings.totalSteps(trainCount: dataset.count)
        scheduleSteps = total
        var sampler = BatchSampler(count: dataset.count, batchSize: settings.batch, seed: settings.seed,
                                   position: UInt64(stepCount))
        let started = Date()
        var lossSum: Float = 0, accuracySum: Float = 0, since = 0
        while stepCount < total {
            let epoch = Int(sampler.epoch) + 1
            let drawn = dataset.batch(indices: sampler.next())
            var images = drawn.images
            let labels = drawn.labels.ints
            if settings.augment {
                images = ClassifierAugmentation.apply(images, shift: settings.shift, seed: settings.seed, step: stepCount)
            }
            let (loss, accuracy) = try step(images: images, labels: labels)
            lossSum += loss
            accuracySum += accuracy
            since += 1
            if let progress, stepCount % max(1, reportEvery) == 0 || stepCount == total {
                progress(ClassifierTrainingProgress(step: stepCount, totalSteps: total, epoch: epoch,
                                                    loss: lossSum / Float(since), accuracy: accuracySum / Float(since),
                                                    learningRate: settings.learningRate(atStep: stepCount, total: total),
                                                    elapsed: Date().timeIntervalSince(started)))
                lossSum = 0
                accuracySum = 0
                since = 0
            }
            if let epochEnd, sampler.position % UInt64(sampler.batchesPerEpoch) == 0 {
                try epochEnd(Int(sampler.position) / sampler.batchesPerEpoch)
            }
        }
        return total
    }
}

/// Input augmentation for classifier training: a random horizontal flip (p = ½) and a random
/// translation by up to ±shift pixels per axis, filling with the background value −1.
public enum ClassifierAugmentation {
    public static func apply(_ images: HostTensor, shift: Int, seed: UInt64, step: Int) -> HostTensor {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        var random = RandomStream(seed: seed, stream: RandomStream.streamID("loom.classifier.augment"),
                                  position: UInt64(step) * UInt64(n) * 3)
        let draws = random.uniform(3 * n)
        var out = [Float](repeating: -1, count: images.elementCount)
        images.floats.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let flip = draws[3 * i] < 0.5
                    let span = 2 * shift + 1
                    let dx = min(span - 1, Int(draws[3 * i + 1] * Float(span))) - shift
                    let dy = min(span - 1, Int(draws[3 * i + 2] * Float(span))) - shift
                    for ch in 0..<c {
                        let plane = (i * c + ch) * h * w
                        let from = src.baseAddress! + plane, to = dst.baseAddress! + plane
                        for y in max(0, dy)..<min(h, h + dy) {
                            let sy = y - dy
                            let srcRow = from + sy * w, dstRow = to + y * w
                            for x in max(0, dx)..<min(w, w + dx) {
                                let sx = x - dx
                                dstRow[x] = srcRow[flip ? w - 1 - sx : sx]
                            }
                        }
                    }
                }
            }
        }
        return HostTensor(shape: images.shape, floats: out)
    }
}

/// Classifier accuracy on a labelled image set.
public enum ClassifierEvaluation {
    public static func accuracy(extractor: FeatureExtractor, dataset: Dataset) throws -> Double {
        let out = try extractor.run(dataset.images)
        return ConditionalAccuracy.compute(logits: out.logits, classes: extractor.config.numClasses, labels: dataset.labels)
    }
}
