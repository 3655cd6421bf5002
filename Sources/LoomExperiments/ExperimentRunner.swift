import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// One evaluated row of a study.
public struct ExperimentResult: Codable, Equatable, Sendable {
    public var label: String
    public var training: String
    public var guidance: String
    public var report: EvaluationReport
    public var samplingSeconds: Double
    public var seed: UInt64
    /// What the row and its variant were (`ExperimentRunner.rowKey`): a stored result is reused
    /// only while they are unchanged.
    public var rowKey: String?
    /// The same samples scored in the second feature space (`secondClassifier`), if any.
    public var secondReport: EvaluationReport?
    /// The machine that trained and sampled the row (CPU model, instruction-set level).
    public var machine: String?
}

/// Runs a study from an `ExperimentConfig`: trains each variant once into `<out>/<name>/`
/// (reusing a finished checkpoint, resuming an unfinished one), then samples, evaluates and
/// records every row; writes `<out>/<row>.png`, `<out>/results.json` and `<out>/results.md`.
public final class ExperimentRunner {
    public let config: ExperimentConfig
    /// The command line recorded in results.md.
    public let command: String
    public let log: (String) -> Void
    public var threads: Int { config.threads ?? Threading.defaultThreads }
    public var dataRoot: String { config.dataRoot ?? Dataset.fashionMNISTDefaultRoot }

    private var dataset: Dataset?
    private var spaces: [String: (FeatureExtractor, ReferenceStats)] = [:]

    public init(config: ExperimentConfig, command: String, log: @escaping (String) -> Void = { print($0) }) {
        self.config = config
        self.command = command
        self.log = log
    }

    public var resultsFolder: String { config.results ?? config.out }
    public var resultsJSONPath: String { resultsFolder + "/results.json" }
    public var resultsMarkdownPath: String { resultsFolder + "/results.md" }

    /// CPU model and the instruction-set level the kernels use, recorded with every result.
    public static var machine: String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = info.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let family = info.split(separator: "\n").first { $0.hasPrefix("cpu family") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
        let number = info.split(separator: "\n").first { $0.hasPrefix("model\t") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
        let id = [family.map { "family \($0)" }, number.map { "model \($0)" }].compactMap { $0 }.joined(separator: " ")
        return "\(model)\(id.isEmpty ? "" : " (\(id))"), \(CPUFeatures.detected.summary); kernels \(KernelSelection.current.isa)"
    }
    /// The run folder of `variant` trained with `seed` (without `seeds` in the config: `<out>/<variant>`).
    public func runFolder(_ variant: String, seed: UInt64? = nil) -> String {
        let seed = seed ?? config.studySeeds[0]
        return config.out + "/\(variant)" + (config.seeds == nil ? "" : "/seed-\(seed)")
    }

    public func checkpointPath(_ variant: String, seed: UInt64? = nil) -> String {
        runFolder(variant, seed: seed) + "/checkpoint.safetensors"
    }

    /// Identifies a row's definition and its variants' training, so results survive only while
    /// both are unchanged.
    func rowKey(_ row: ExperimentConfig.ResultRow) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let variants = [row.training] + (row.guide.map { [$0] } ?? [])
        let parts = [try? encoder.encode(row)] + variants.map { try? encoder.encode(config.variant($0)) }
            + [try? encoder.encode(config.sampler), "\(config.samples)".data(using: .utf8),
               "\(config.secondClassifier ?? "-") \(config.fidBootstrap ?? 20)".data(using: .utf8)]
        return Plan.checksum(parts.map { String(decoding: $0 ?? Data(), as: UTF8.self) }.joined(separator: "|"))
    }

    /// Runs every row (or only `only`) once per seed, training what those rows need. A (row, seed)
    /// already in results.json with an unchanged definition is kept, so an interrupted study
    /// resumes where it stopped; rows named in `only` are evaluated again. Returns the new results.
    ///
    /// A part of a study: `variants` keeps the rows whose training (and guide) variants are all
    /// among them, `seeds` keeps those of the study's seeds; what other parts recorded in
    /// results.json stays.
    ///
    /// Ctrl-C / SIGTERM stops the study at the next safe point (a training step, a sampling batch)
    /// with `Interruption.Stopped`; checkpoints and the rows recorded so far are kept.
    @discardableResult
    public func run(only: [String]? = nil, variants: [String]? = nil, seeds: [UInt64]? = nil) throws -> [ExperimentResult] {
        try config.validate()
        Interruption.install()
        try FileManager.default.createDirectory(atPath: config.out, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: resultsFolder, withIntermediateDirectories: true)
        var rows: [ExperimentConfig.ResultRow]
        if let only {
            for label in only where !config.rows.contains(where: { $0.label == label }) {
                throw DiffusionError("experiment: no row '\(label)' (rows: \(config.rows.map(\.label).joined(separator: ", ")))")
            }
            rows = config.rows.filter { only.contains($0.label) }
        } else {
            rows = config.rows
        }
        if let variants {
            for name in variants where config.variant(name) == nil {
                throw DiffusionError("experiment: no training variant '\(name)' (variants: \(config.training.map(\.name).joined(separator: ", ")))")
            }
            rows = rows.filter { row in row.variantsNeeded.allSatisfy(variants.contains) }
            guard !rows.isEmpty else { throw DiffusionError("experiment: no row needs only the variants \(variants.joined(separator: ", "))") }
        }
        let studySeeds = try seeds.map { chosen -> [UInt64] in
            for seed in chosen where !config.studySeeds.contains(seed) {
                throw DiffusionError("experiment: seed \(seed) is not one of the study's seeds \(config.studySeeds)")
            }
            return config.studySeeds.filter(chosen.contains)
        } ?? config.studySeeds
        var results = try loadResults()
        var fresh: [ExperimentResult] = []
        for seed in studySeeds {
            // Train every variant the rows still to run need, in config order (a row recorded
            // before, here or by another part, needs nothing).
            func done(_ row: ExperimentConfig.ResultRow) -> Bool {
                only == nil && results.contains { $0.label == row.label && $0.seed == seed && $0.rowKey == rowKey(row) }
            }
            var needed = Set<String>()
            for row in rows where !done(row) { needed.formUnion(row.variantsNeeded) }
            for variant in config.training where needed.contains(variant.name) {
                try stopIfInterrupted(before: "training '\(variant.name)', seed \(seed)", recorded: fresh.count)
                try train(variant, seed: seed)
            }
            for row in rows {
                if done(row) {
                    log("row \(row.label), seed \(seed): done before, kept")
                    continue
                }
                try stopIfInterrupted(before: "row \(row.label), seed \(seed)", recorded: fresh.count)
                let result: ExperimentResult
                do {
                    result = try evaluate(row, seed: seed)
                } catch let stopped as Interruption.Stopped {
                    throw Interruption.Stopped("experiment stopped in row \(row.label), seed \(seed) (\(stopped.message)); "
                                               + "\(fresh.count) rows recorded by this run are kept; rerun to resume")
                }
                fresh.append(result)
                results.removeAll { $0.label == row.label && $0.seed == seed }
                results.append(result)
                try writeResults(fresh)
            }
        }
        try writeResults(fresh)
        return fresh
    }

    func stopIfInterrupted(before stage: String, recorded: Int) throws {
        guard Interruption.requested else { return }
        throw Interruption.Stopped("experiment stopped before \(stage); \(recorded) rows recorded by this run are kept; "
                                   + "rerun to resume")
    }

    // MARK: Training

    func trainingData() throws -> Dataset {
        if let dataset { return dataset }
        let data = try Dataset.fashionMNIST(root: dataRoot, split: .train, padTo: 32, limit: config.trainLimit)
        dataset = data
        return data
    }

    /// Trains `variant` up to its step count, reusing or resuming its checkpoint.
    public func train(_ variant: ExperimentConfig.TrainingVariant, seed: UInt64? = nil) throws {
        let seed = seed ?? config.studySeeds[0]
        var trainingConfig = variant.trainingConfig(seed: seed)
        let path = checkpointPath(variant.name, seed: seed)
        var state: TrainingState?
        let plan = try Trainer.trainingPlan(trainingConfig)
        if FileManager.default.fileExists(atPath: path) {
            let (saved, savedConfig) = try TrainingState.load(path: path, graph: plan.graph)
            var comparable = savedConfig
            comparable.steps = trainingConfig.steps
            guard comparable == trainingConfig else {
                throw DiffusionError("experiment: \(path) was trained with a different configuration than variant "
                                     + "'\(variant.name)'; delete it or rename the variant")
            }
            if saved.step >= trainingConfig.steps {
                log("variant \(variant.name): reusing \(path) (step \(saved.step))")
                return
            }
            log("variant \(variant.name): resuming \(path) from step \(saved.step)")
            state = saved
        }
        trainingConfig.steps = variant.steps
        let trainer = try Trainer(config: trainingConfig, dataset: try trainingData(), state: state, threads: threads, plan: plan)
        let run = TrainingRun(directory: runFolder(variant.name, seed: seed), checkpointEvery: 500,
                              logEvery: max(10, variant.steps / 20))
        let outcome = try run.run(trainer) { self.log("  [\(variant.name)] " + $0) }
        if outcome == .interrupted {
            throw Interruption.Stopped("experiment stopped while training '\(variant.name)', seed \(seed) (checkpoint saved); "
                                       + "rerun to resume")
        }
    }

    // MARK: Evaluation

    /// Makes both feature spaces ready (trains a missing classifier the config allows, computes the
    /// reference statistics), so that parts started afterwards at the same time share them.
    public func prepareFeatureSpaces() throws {
        try config.validate()
        _ = try evaluationTools()
        _ = try secondFeatureSpace()
    }

    func evaluationTools() throws -> (FeatureExtractor, ReferenceStats) {
        try featureSpace(path: config.classifier, steps: config.classifierSteps, architecture: .tiny, seed: config.seed,
                         cache: config.referenceCache)
    }

    /// The second feature space, when the study names one.
    func secondFeatureSpace() throws -> (FeatureExtractor, ReferenceStats)? {
        guard let path = config.secondClassifier else { return nil }
        var conv = FeatureClassifierConfig.stridedConv
        conv.patchWidth = 16
        conv.featureDim = 32
        return try featureSpace(path: path, steps: config.secondClassifierSteps, architecture: conv, seed: config.seed + 1,
                                cache: nil)
    }

    /// A classifier's extractor and the reference statistics of the training set in its features;
    /// a missing classifier with `steps` is trained first (`architecture`, `seed`).
    func featureSpace(path: String, steps: Int?, architecture: FeatureClassifierConfig, seed: UInt64,
                      cache: String?) throws -> (FeatureExtractor, ReferenceStats) {
        if let known = spaces[path] { return known }
        if !FileManager.default.fileExists(atPath: path), let steps {
            log("classifier \(path) missing: training a \(architecture.resolvedArchitecture.rawValue) one for \(steps) steps")
            var settings = ClassifierTrainingSettings()
            settings.batch = 50
            settings.maxSteps = steps
            settings.epochs = 1000
            settings.learningRate = 4e-3
            settings.warmupSteps = min(20, steps)
            settings.augment = false
            settings.seed = seed
            let trainer = try ClassifierTrainer(config: architecture, settings: settings, threads: threads)
            try trainer.train(on: try trainingData())
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            try trainer.weights(metadata: ["steps": String(steps)]).save(path: path)
        }
        let weights = try ClassifierWeights.load(path: path)
        let extractor = try FeatureExtractor(weights: weights, batch: 250, threads: threads)
        let source = "fashion-mnist train" + (config.referenceLimit.map { " (first \($0))" } ?? "")
        let cachePath = cache ?? ReferenceStats.defaultCachePath(classifierPath: path)
        let computed = try ReferenceStats.loadOrCompute(
            cachePath: cachePath, extractor: extractor, source: source,
            images: { try Dataset.fashionMNIST(root: self.dataRoot, split: .train, limit: self.config.referenceLimit).images }, log: log)
        // Freshly computed statistics are reloaded from the cache so that later runs (which read
        // the cache) give bit-identical numbers.
        var reference = computed.stats
        if !computed.cached, let reloaded = try? ReferenceStats.load(path: cachePath),
           reloaded.classifierChecksum == weights.checksum {
            reference = reloaded
        }
        spaces[path] = (extractor, reference)
        return (extractor, reference)
    }

    static func interval(_ values: [Double]?) -> NoiseInterval {
        guard let values, values.count == 2 else { return .all }
        return NoiseInterval(lo: values[0], hi: values[1])
    }

    /// Samples, evaluates and grids one row for one seed (sampling noise from that seed).
    public func evaluate(_ row: ExperimentConfig.ResultRow, seed: UInt64? = nil) throws -> ExperimentResult {
        let seed = seed ?? config.studySeeds[0]
        let ema = config.sampler.ema ?? true
        let loaded = try CheckpointWeights.load(path: checkpointPath(row.training, seed: seed), ema: ema)
        let model = loaded.config.model
        let objective = loaded.config.loss.objective
        let kind = config.sampler.kind ?? (objective == .ddpmEps ? .ddim : .euler)
        let settings = SamplerSettings(kind: kind, steps: config.sampler.steps, objective: objective,
                                       shift: config.sampler.shift ?? 1)
        try settings.validate()
        let guidance = GuidanceSettings(mode: row.guidance, weight: row.w ?? 1, cfgScale: row.s ?? 1,
                                        igInterval: Self.interval(row.igInterval),
                                        cfgInterval: Self.interval(row.cfgInterval))
        try guidance.validate(outChannels: model.outChannels)
        var guide: (ModelConfig, [String: HostTensor])?
        if row.guidance.usesGuideNetwork, let name = row.guide {
            let g = try CheckpointWeights.load(path: checkpointPath(name, seed: seed), ema: ema)
            guide = (g.config.model, g.weights)
        }
        let n = config.samples
        let labels = (0..<n).map { Int64($0 % model.numClasses) }
        let job = SamplingJob(model: model, weights: loaded.weights, guide: guide, sampler: settings, guidance: guidance,
                              batch: min(config.sampler.batch ?? 50, n), seed: seed &+ (row.samplingSeedOffset ?? 0),
                              threads: threads)
        log("row \(row.label), seed \(seed): \(n) images from \(row.training) (step \(loaded.step)), \(kind.rawValue) "
            + "\(settings.steps) steps, \(row.guidance.rawValue)")
        let started = Date()
        // Progress about every fifth of the row: images done, time so far, time left.
        let batches = (n + job.batch - 1) / job.batch, every = max(1, batches / 5)
        var batchesDone = 0
        let samples = try job.run(labels: labels, stopOnInterruption: true) { start, step in
            guard step.evaluation == step.evaluations - 1 else { return }
            batchesDone += 1
            guard batchesDone % every == 0, batchesDone < batches else { return }
            let done = min(start + job.batch, n), elapsed = Date().timeIntervalSince(started)
            self.log("  [\(row.label)] \(done)/\(n) images, \(formatDuration(elapsed)), ETA "
                     + formatDuration(elapsed / Double(done) * Double(n - done)))
        }
        let seconds = Date().timeIntervalSince(started)
        let grid = Self.fileName(row.label) + (config.seeds == nil ? "" : ".seed-\(seed)")
        try writeGrid(samples, labels: labels, classes: model.numClasses, to: config.out + "/\(grid).png")
        let (extractor, reference) = try evaluationTools()
        let bootstrap = config.fidBootstrap ?? 20
        let report = try SampleEvaluator.evaluate(name: row.label, images: samples, labels: labels,
                                                  extractor: extractor, reference: reference, bootstrap: bootstrap)
        let second = try secondFeatureSpace().map { space in
            try SampleEvaluator.evaluate(name: row.label, images: samples, labels: labels, extractor: space.0,
                                         reference: space.1, bootstrap: bootstrap)
        }
        log("  " + report.summary + String(format: ", %.1f s sampling", seconds))
        return ExperimentResult(label: row.label, training: row.training, guidance: Self.describe(row),
                                report: report, samplingSeconds: seconds, seed: seed, rowKey: rowKey(row), secondReport: second,
                                machine: Self.machine)
    }

    static func describe(_ row: ExperimentConfig.ResultRow) -> String {
        func iv(_ v: [Double]?) -> String {
            guard let v, v.count == 2, v != [0, 1] else { return "" }
            return " σ∈[\(v[0]), \(v[1])]"
        }
        switch row.guidance {
        case .none: return "none"
        case .ig: return "IG w=\(row.w ?? 1)" + iv(row.igInterval)
        case .cfg: return "CFG s=\(row.s ?? 1)" + iv(row.cfgInterval)
        case .igCfg: return "IG w=\(row.w ?? 1)" + iv(row.igInterval) + " + CFG s=\(row.s ?? 1)" + iv(row.cfgInterval)
        case .autoguidance: return "autoguidance w=\(row.w ?? 1) (guide \(row.guide ?? "?"))"
        case .autoguidanceCfg:
            return "autoguidance w=\(row.w ?? 1) (guide \(row.guide ?? "?"))" + " + CFG s=\(row.s ?? 1)" + iv(row.cfgInterval)
        }
    }

    /// A row label as a file name.
    public static func fileName(_ label: String) -> String {
        let name = String(label.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
        return name.hasPrefix(".") ? "_" + name.dropFirst() : name   // never a hidden file
    }

    /// Up to 8 images per class, one grid row per class.
    func writeGrid(_ samples: HostTensor, labels: [Int64], classes: Int, to path: String) throws {
        let perImage = samples.shape.dropFirst().reduce(1, *)
        let floats = samples.floats
        var picked: [Float] = []
        var count = 0
        let perClass = min(8, labels.count / classes)
        guard perClass > 0 else {
            try ImageGrid.write(samples, rows: 1, to: path, padding: 2, scale: 2)
            return
        }
        for c in 0..<classes {
            let indices = labels.indices.filter { labels[$0] == Int64(c) }.prefix(perClass)
            for i in indices {
                picked.append(contentsOf: floats[(i * perImage)..<((i + 1) * perImage)])
                count += 1
            }
        }
        let grid = HostTensor(shape: [count] + Array(samples.shape.dropFirst()), floats: picked)
        try ImageGrid.write(grid, rows: classes, to: path, padding: 2, scale: 2)
    }
}
