import LoomData
@testable import LoomEvaluation
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// The Fashion-MNIST feature classifier trained briefly with Loom's compiled plans, and the
/// metrics it drives. Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`); skipped otherwise.
final class ClassifierTests: XCTestCase {
    /// One briefly trained classifier shared by the tests of this class (trained on first use).
    struct Trained {
        var weights: ClassifierWeights
        var initialChecksum: String
        var train: Dataset
        var test: Dataset
        var seconds: Double
        var firstLoss: Float
        var lastLoss: Float
    }

    nonisolated(unsafe) static var shared: Result<Trained, Error>?

    static let trainCount = 2000
    static let testCount = 500
    static let steps = 300

    func trained() throws -> Trained {
        if let shared = Self.shared { return try shared.get() }
        let result = Result { () throws -> Trained in
            let root = Dataset.fashionMNISTDefaultRoot
            guard FileManager.default.fileExists(atPath: root) else {
                throw XCTSkip("Fashion-MNIST is not installed at \(root)")
            }
            let train = try Dataset.fashionMNIST(root: root, split: .train, limit: Self.trainCount)
            let test = try Dataset.fashionMNIST(root: root, split: .test, limit: Self.testCount)
            var settings = ClassifierTrainingSettings()
            settings.batch = 50
            settings.maxSteps = Self.steps
            settings.epochs = 100
            settings.learningRate = 4e-3
            settings.warmupSteps = 20
            settings.labelSmoothing = 0
            settings.augment = false
            let trainer = try ClassifierTrainer(config: .tiny, settings: settings, threads: Threading.defaultThreads)
            let initial = try trainer.weights().checksum
            var losses: [Float] = []
            let started = Date()
            try trainer.train(on: train, reportEvery: 25) { losses.append($0.loss) }
            let seconds = Date().timeIntervalSince(started)
            return Trained(weights: try trainer.weights(metadata: ["steps": String(Self.steps)]), initialChecksum: initial,
                           train: train, test: test, seconds: seconds, firstLoss: losses.first ?? .nan,
                           lastLoss: losses.last ?? .nan)
        }
        Self.shared = result
        return try result.get()
    }

    func testClassifierTrainsOnSubset() throws {
        let t = try trained()
        let extractor = try FeatureExtractor(weights: t.weights, batch: 250)
        let accuracy = try ClassifierEvaluation.accuracy(extractor: extractor, dataset: t.test)
        print(String(format: "tiny classifier: %d steps in %.1f s, loss %.3f → %.3f, test accuracy %.3f on %d images",
                     Self.steps, t.seconds, t.firstLoss, t.lastLoss, accuracy, t.test.count))
        XCTAssertLessThan(t.lastLoss, t.firstLoss)
        XCTAssertGreaterThan(accuracy, 0.70)
        XCTAssertNotEqual(t.weights.checksum, t.initialChecksum, "training changed the weights")
    }

    func testWeightsRoundTripThroughSafetensors() throws {
        let t = try trained()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-cls-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try t.weights.save(path: path)
        let loaded = try ClassifierWeights.load(path: path)
        XCTAssertEqual(loaded.config, .tiny)
        XCTAssertEqual(loaded.tensors, t.weights.tensors)
        XCTAssertEqual(loaded.checksum, t.weights.checksum)
        XCTAssertEqual(loaded.metadata["steps"], String(Self.steps))
        // A file that is not a classifier is rejected with a clear message.
        let other = path + ".other.safetensors"
        defer { try? FileManager.default.removeItem(atPath: other) }
        try SafeTensors.write([("x", HostTensor(shape: [1], floats: [0]))], metadata: [:], to: other)
        XCTAssertThrowsError(try ClassifierWeights.load(path: other)) { error in
            XCTAssertTrue("\(error)".contains("not a Loom classifier"), "\(error)")
        }
    }

    func testRealImagesScoreNearReferenceAndNoiseFar() throws {
        let t = try trained()
        let extractor = try FeatureExtractor(weights: t.weights, batch: 250)
        let reference = try ReferenceStats.compute(extractor: extractor, images: t.train.images, source: "fm train \(Self.trainCount)")
        XCTAssertEqual(reference.count, Self.trainCount)
        // Real test images vs the training reference.
        let real = try SampleEvaluator.evaluate(name: "real", images: t.test.images, labels: t.test.labels,
                                                extractor: extractor, reference: reference)
        // Noise, labels as the test set: Gaussian (clamped to [-1, 1] by the evaluator) and uniform.
        var random = RandomStream(seed: 5, stream: 6)
        let count = t.test.images.elementCount
        let gaussian = HostTensor(shape: t.test.images.shape, floats: random.normal(count))
        let uniform = HostTensor(shape: t.test.images.shape, floats: random.uniform(count, low: -1, high: 1))
        let noise = try SampleEvaluator.evaluate(name: "noise", images: gaussian, labels: t.test.labels,
                                                 extractor: extractor, reference: reference)
        let flat = try SampleEvaluator.evaluate(name: "uniform", images: uniform, labels: t.test.labels,
                                                extractor: extractor, reference: reference)
        // Blank canvases (all background).
        let blank = HostTensor(shape: t.test.images.shape, floats: [Float](repeating: -1, count: count))
        let empty = try SampleEvaluator.evaluate(name: "blank", images: blank, labels: t.test.labels,
                                                 extractor: extractor, reference: reference)
        for report in [real, noise, flat, empty] { print(report.name + ": " + report.summary) }
        for far in [noise, flat, empty] {
            XCTAssertLessThan(real.fidFM, 0.05 * far.fidFM, "real test images sit far closer to the reference than \(far.name)")
            XCTAssertLessThan(far.recall, 0.05, far.name)
        }
        XCTAssertGreaterThan(real.precision, 0.6)
        XCTAssertGreaterThan(real.recall, 0.6)
        XCTAssertLessThan(noise.precision, 0.2)
        XCTAssertLessThan(flat.precision, 0.2)
        // (Blank canvases are a collapsed set: one feature vector. It may fall inside the k-NN ball
        // of a real outlier, so its precision is not asserted: k-NN precision is known to be
        // sensitive to outliers. FID and recall reject it.)
        XCTAssertGreaterThan(real.conditionalAccuracy, 0.7)
        XCTAssertEqual(real.manifoldReferenceCount, Self.testCount)
        XCTAssertEqual(real.k, 3)
    }

    func testReferenceCacheIsKeyedByClassifierChecksum() throws {
        let t = try trained()
        let extractor = try FeatureExtractor(weights: t.weights, batch: 250)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-refcache-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let images = t.train.prefix(300).images
        var computed = 0
        let loader = { () -> HostTensor in
            computed += 1
            return images
        }
        let first = try ReferenceStats.loadOrCompute(cachePath: path, extractor: extractor, source: "s", images: loader)
        XCTAssertFalse(first.cached)
        let second = try ReferenceStats.loadOrCompute(cachePath: path, extractor: extractor, source: "s", images: loader)
        XCTAssertTrue(second.cached)
        XCTAssertEqual(computed, 1)
        XCTAssertEqual(second.stats.features, first.stats.features)
        XCTAssertEqual(try FrechetDistance.compute(first.stats.gaussian, second.stats.gaussian), 0, accuracy: 1e-9)
        // A different classifier (fresh weights) invalidates the cache; so does another source.
        let fresh = try ClassifierWeights(config: .tiny, tensors: FeatureClassifier.initialWeights(.tiny, seed: 9))
        let other = try FeatureExtractor(weights: fresh, batch: 100)
        let third = try ReferenceStats.loadOrCompute(cachePath: path, extractor: other, source: "s", images: loader)
        XCTAssertFalse(third.cached)
        XCTAssertEqual(third.stats.classifierChecksum, fresh.checksum)
        let fourth = try ReferenceStats.loadOrCompute(cachePath: path, extractor: other, source: "t", images: loader)
        XCTAssertFalse(fourth.cached)
        XCTAssertEqual(computed, 3)
    }

    /// A file at the cache path that is not a reference-statistics cache (here a checkpoint-like
    /// safetensors file) is refused and left as it was.
    func testReferenceCacheNeverOverwritesOtherFiles() throws {
        let fresh = try ClassifierWeights(config: .tiny, tensors: FeatureClassifier.initialWeights(.tiny, seed: 9))
        let extractor = try FeatureExtractor(weights: fresh, batch: 100)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-notcache-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write([("w", HostTensor(shape: [2], floats: [1, 2]))], metadata: ["loom.training": "{}"], to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ReferenceStats.loadOrCompute(cachePath: path, extractor: extractor, source: "s",
                                                              images: { HostTensor(shape: [1, 1, 32, 32], floats: [Float](repeating: 0, count: 1024)) })) { error in
            XCTAssertTrue("\(error)".contains("refusing to overwrite"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
    }

    func testLossGraphMatchesHostCrossEntropy() throws {
        // The graph's log-softmax cross-entropy equals one computed on the host from the
        // inference graph's logits (fresh weights, random images, smoothed targets).
        let config = FeatureClassifierConfig.tiny
        let batch = 4
        let weights = try FeatureClassifier.initialWeights(config, seed: 3)
        var random = RandomStream(seed: 1, stream: 1)
        let images = HostTensor(shape: [batch, 1, 32, 32], floats: random.uniform(batch * 1024, low: -1, high: 1))
        var targets = [Float](repeating: 0.01, count: batch * 10)
        for i in 0..<batch { targets[i * 10 + (i * 3) % 10] = 0.91 }
        let executor = ReferenceExecutor(threads: 1)
        let lossOut = try executor.run(try FeatureClassifier.lossGraph(config, batch: batch),
                                       inputs: ["images": images, "targets": HostTensor(shape: [batch, 10], floats: targets)],
                                       parameters: weights)
        let logits = lossOut["logits"]!.floats
        var expected = 0.0
        for i in 0..<batch {
            let row = logits[(i * 10)..<(i * 10 + 10)].map(Double.init)
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            for c in 0..<10 { expected -= Double(targets[i * 10 + c]) * (row[c] - lse) }
        }
        expected /= Double(batch)
        XCTAssertEqual(Double(lossOut["loss"]!.floats[0]), expected, accuracy: 1e-5)
        // The compiled inference plan gives the same logits.
        let extractor = try FeatureExtractor(weights: ClassifierWeights(config: config, tensors: weights), batch: 3)
        let out = try extractor.run(images)
        XCTAssertEqual(out.count, batch)
        XCTAssertEqual(out.features.count, batch * config.featureDim)
        for (a, b) in zip(out.logits, logits) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    func testAugmentationFlipsAndShifts() {
        let n = 64
        var random = RandomStream(seed: 2, stream: 2)
        let images = HostTensor(shape: [n, 1, 8, 8], floats: random.uniform(n * 64))
        // No shift: each image is itself or its mirror; both occur.
        let flipped = ClassifierAugmentation.apply(images, shift: 0, seed: 1, step: 0)
        var mirrors = 0
        for i in 0..<n {
            let src = Array(images.floats[(i * 64)..<(i * 64 + 64)]), out = Array(flipped.floats[(i * 64)..<(i * 64 + 64)])
            var mirror = [Float](repeating: 0, count: 64)
            for y in 0..<8 {
                for x in 0..<8 { mirror[y * 8 + x] = src[y * 8 + 7 - x] }
            }
            XCTAssertTrue(out == src || out == mirror)
            if out == mirror { mirrors += 1 }
        }
        XCTAssertGreaterThan(mirrors, 10)
        XCTAssertLessThan(mirrors, n - 10)
        // Shifts keep pixel values and fill with −1; deterministic in (seed, step).
        let shifted = ClassifierAugmentation.apply(images, shift: 2, seed: 1, step: 3)
        XCTAssertEqual(shifted, ClassifierAugmentation.apply(images, shift: 2, seed: 1, step: 3))
        XCTAssertNotEqual(shifted, ClassifierAugmentation.apply(images, shift: 2, seed: 1, step: 4))
        XCTAssertTrue(shifted.floats.contains(-1))
        XCTAssertTrue(shifted.floats.allSatisfy { $0 == -1 || ($0 >= 0 && $0 < 1) })
    }

    func testLearningRateSchedule() {
        var s = ClassifierTrainingSettings()
        s.learningRate = 1
        s.warmupSteps = 10
        s.finalLearningRateFraction = 0.1
        XCTAssertEqual(s.learningRate(atStep: 5, total: 110), 0.5, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(atStep: 10, total: 110), 1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(atStep: 60, total: 110), 0.55, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(atStep: 110, total: 110), 0.1, accuracy: 1e-6)
        // Warm-up is capped at a fifth of a short run.
        s.warmupSteps = 200
        XCTAssertEqual(s.learningRate(atStep: 10, total: 100), 0.5, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(atStep: 20, total: 100), 1, accuracy: 1e-6)
        s.batch = 100
        s.epochs = 3
        XCTAssertEqual(s.totalSteps(trainCount: 1050), 30)
        s.maxSteps = 7
        XCTAssertEqual(s.totalSteps(trainCount: 1050), 7)
    }
}

/// The second feature space: a strided-convolution classifier trains like the patch-MLP (loss falls,
/// test accuracy far above chance) and its weights round-trip with their architecture.
final class StridedConvClassifierTests: TemporaryDirectoryTestCase {
    func testStridedConvTrainsAndRoundTrips() throws {
        let root = Dataset.fashionMNISTDefaultRoot
        guard FileManager.default.fileExists(atPath: root) else { throw XCTSkip("Fashion-MNIST is not installed at \(root)") }
        var config = FeatureClassifierConfig.stridedConv
        config.patchWidth = 16
        config.featureDim = 32
        XCTAssertTrue(config.description.hasPrefix("strided-conv"), config.description)
        let train = try Dataset.fashionMNIST(root: root, split: .train, limit: 2000)
        let test = try Dataset.fashionMNIST(root: root, split: .test, limit: 500)
        var settings = ClassifierTrainingSettings()
        settings.batch = 50
        settings.maxSteps = 300
        settings.epochs = 100
        settings.learningRate = 4e-3
        settings.warmupSteps = 20
        settings.augment = false
        settings.seed = 1
        let trainer = try ClassifierTrainer(config: config, settings: settings, threads: Threading.defaultThreads)
        var losses: [Float] = []
        try trainer.train(on: train, reportEvery: 1) { losses.append($0.loss) }
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(50).reduce(0, +) / 50
        XCTAssertLessThan(last, 0.5 * first, "mean loss of the first 5 steps \(first), of the last 50 \(last)")
        let weights = try trainer.weights(metadata: [:])
        let path = directory + "/conv.safetensors"
        try weights.save(path: path)
        let loaded = try ClassifierWeights.load(path: path)
        XCTAssertEqual(loaded.config, config)
        let extractor = try FeatureExtractor(weights: loaded, batch: 100, threads: 1)
        let (features, logits, _) = try extractor.run(test.images)
        XCTAssertEqual(features.count, 500 * config.featureDim)
        let accuracy = ConditionalAccuracy.compute(logits: logits, classes: 10, labels: test.labels)
        XCTAssertGreaterThan(accuracy, 0.65, "test accuracy \(accuracy)")
        print("strided-conv classifier: test accuracy \(accuracy) after 300 steps")
    }
}
