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

/// A whole study, read from JSON by `loom experiment`: training variants (each trained once, at
/// equal steps) and result rows (each sampled with the same seed and count, then evaluated).
public struct ExperimentConfig: Codable, Equatable, Sendable {
    /// Output folder: one run folder per variant, a PNG grid per row, results.md/results.json.
    public var out: String
    /// Folder of results.json and results.md when they should live apart from the checkpoints (a
    /// study run in parts over several machines keeps them in the repository); default `out`.
    public var results: String?
    /// Classifier weights from `loom train-classifier`.
    public var classifier: String
    /// When the classifier file is missing, train a tiny one for this many steps (smoke configs).
    public var classifierSteps: Int?
    /// A second classifier of another architecture (`strided-conv`), for FID in a second feature
    /// space; trained with its own seed (seed + 1) when missing and `secondClassifierSteps` is set.
    public var secondClassifier: String?
    public var secondClassifierSteps: Int?
    /// Bootstrap resamples for each FID's standard error (default 20; 0 for none).
    public var fidBootstrap: Int?
    /// Reference-statistics cache (default: next to the classifier).
    public var referenceCache: String?
    /// Compute the reference statistics from only the first N training images (default: all 60,000).
    public var referenceLimit: Int?
    /// Fashion-MNIST folder (default: the Debian package's).
    public var dataRoot: String?
    /// Use only the first N training images (default: all).
    public var trainLimit: Int?
    /// Seed of training and of sampling noise (the same for every row), when `seeds` is absent.
    public var seed: UInt64
    /// Run every variant and row once per seed (initialisation, data order and sampling noise);
    /// results get mean ± standard deviation and paired comparisons. Checkpoints then live in
    /// `<out>/<variant>/seed-<s>/`.
    public var seeds: [UInt64]?
    /// Paired differences to report (row a − row b, FID-FM, by seed) with bootstrap intervals.
    public var comparisons: [Comparison]?
    /// Images per row (labels cycle over the classes).
    public var samples: Int
    public var sampler: SamplerConfig
    public var training: [TrainingVariant]
    public var rows: [ResultRow]
    /// Threads (default: LOOM_THREADS or all cores).
    public var threads: Int?

    /// The sampler every row uses: kind, step count, time shift and whether to sample the EMA weights.
    public struct SamplerConfig: Codable, Equatable, Sendable {
        /// euler, heun, euler_maruyama (default euler).
        public var kind: SamplerKind?
        public var steps: Int
        public var shift: Double?
        /// Batch of the compiled step plan (default 50).
        public var batch: Int?
        /// Use EMA weights (default true).
        public var ema: Bool?
    }

    /// One model to train: its backbone shape, IG head and objective, and its training schedule.
    public struct TrainingVariant: Codable, Equatable, Sendable {
        public var name: String
        public var backbone: Backbone?
        public var hidden: Int
        public var depth: Int
        public var heads: Int
        public var patch: Int
        /// Attach the IG head after this many blocks (1-based); null: no head.
        public var igLayer: Int?
        /// Default flow_repa for SiT.
        public var objective: Objective?
        public var lambda: Float?
        public var omega: Float?
        public var steps: Int
        public var batch: Int
        public var lr: Float
        public var warmup: Int?
        /// 0 or null disables the EMA copy.
        public var emaDecay: Float?
        public var labelDropout: Float?
        /// Operand precision of the training step (default fp32; bf16 where the CPU has it is the
        /// fastest plan).
        public var precision: PrecisionPolicy?
    }

    /// A claim to test: row `a` against row `b`, paired by seed.
    public struct Comparison: Codable, Equatable, Sendable {
        public var label: String
        public var a: String
        public var b: String
        /// What the claim says of a − b; without it the comparison only reports what it finds.
        public var expect: Expectation?
        /// The claim in words, shared by the comparisons that test it under different conditions
        /// (they form one group of the claims table, where the claim first appears).
        public var claim: String?
        /// What this comparison varies among those of its claim (λ, head position, depth).
        public var condition: String?

        /// The direction a claim expects of the FID difference a − b.
        public enum Expectation: String, Codable, Sendable {
            /// a scores a lower (better) FID than b.
            case lower
            /// a scores a higher FID than b.
            case higher
            /// No difference: every interval spans 0 (the sampling-noise floor).
            case neither
        }

        /// The claim this comparison tests: `claim`, or the label when the config gives none.
        public var claimText: String { claim ?? label }

        public init(label: String, a: String, b: String, expect: Expectation? = nil, claim: String? = nil,
                    condition: String? = nil) {
            (self.label, self.a, self.b, self.expect, self.claim, self.condition) = (label, a, b, expect, claim, condition)
        }
    }

    /// The seeds the study runs.
    public var studySeeds: [UInt64] { seeds ?? [seed] }

    /// One table row: a trained variant sampled under one guidance setting.
    public struct ResultRow: Codable, Equatable, Sendable {
        public var label: String
        /// Name of the training variant to sample from.
        public var training: String
        public var guidance: GuidanceMode
        /// IG weight w (also the autoguidance weight).
        public var w: Double?
        /// CFG scale s.
        public var s: Double?
        /// IG interval in σ as [lo, hi] (default [0, 1]).
        public var igInterval: [Double]?
        /// CFG interval in σ as [lo, hi] (default [0, 1]).
        public var cfgInterval: [Double]?
        /// Training variant used as the weaker guide (autoguidance).
        public var guide: String?
        /// Sample with seed + this offset (same checkpoint, other noise): a row and its copy with an
        /// offset measure the sampling-noise floor of FID.
        public var samplingSeedOffset: UInt64?

        /// The training variants the row samples from: its own, and its guide where the guidance
        /// runs a guide network.
        public var variantsNeeded: [String] {
            [training] + (guidance.usesGuideNetwork ? guide.map { [$0] } ?? [] : [])
        }
    }

    public static func load(path: String) throws -> ExperimentConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DiffusionError("experiment config '\(path)' is unreadable: \(error.localizedDescription)")
        }
        let config: ExperimentConfig
        do { config = try JSONDecoder().decode(ExperimentConfig.self, from: data) } catch {
            throw DiffusionError("experiment config '\(path)' is not valid: \(JSONFileError.describe(error))")
        }
        try config.validate()
        return config
    }

    /// Rows sample at most this many images each; far beyond any study, far below overflow.
    public static let maxSamples = 10_000_000
    /// Sampler steps at most (as `loom sample --steps`).
    public static let maxSamplerSteps = 100_000
    /// Bootstrap resamples of a FID's standard error at most.
    public static let maxFIDBootstrap = 10_000

    /// Checks everything a study would otherwise find out only when it gets there (hours into a
    /// run): sizes, counts, every variant's training configuration, grid file names.
    public func validate() throws {
        guard (4...Self.maxSamples).contains(samples) else {
            throw DiffusionError("experiment: samples must be in 4…\(Self.maxSamples), got \(samples)")
        }
        // A row's samples ([N, 1, 32, 32]) and their copy for the feature extractor.
        try MachineMemory.check(samples * 32 * 32 * MemoryLayout<Float>.size, samples * 32 * 32 * MemoryLayout<Float>.size,
                                what: "experiment: a row of \(samples) samples")
        guard (1...Self.maxSamplerSteps).contains(sampler.steps) else {
            throw DiffusionError("experiment: sampler steps must be in 1…\(Self.maxSamplerSteps), got \(sampler.steps)")
        }
        if let batch = sampler.batch, batch < 1 {
            throw DiffusionError("experiment: sampler batch must be positive, got \(batch)")
        }
        if let bootstrap = fidBootstrap, !(0...Self.maxFIDBootstrap).contains(bootstrap) {
            throw DiffusionError("experiment: fidBootstrap must be in 0…\(Self.maxFIDBootstrap), got \(bootstrap)")
        }
        for (name, value) in [("classifierSteps", classifierSteps), ("secondClassifierSteps", secondClassifierSteps),
                              ("trainLimit", trainLimit), ("referenceLimit", referenceLimit)] {
            if let value, value < 1 { throw DiffusionError("experiment: \(name) must be positive, got \(value)") }
        }
        if let threads, !(1...Threading.maxThreads).contains(threads) {
            throw DiffusionError("experiment: threads must be in 1…\(Threading.maxThreads), got \(threads)")
        }
        var names = Set<String>()
        for v in training {
            guard names.insert(v.name).inserted else { throw DiffusionError("experiment: duplicate training variant '\(v.name)'") }
            guard !v.name.isEmpty, !v.name.contains("/"), !v.name.hasPrefix("."), !v.name.contains("\0") else {
                throw DiffusionError("experiment: bad variant name '\(v.name)' (it names a folder inside the output folder: no '/', no leading '.')")
            }
            do { try v.trainingConfig(seed: studySeeds[0]).validate() } catch {
                throw DiffusionError("experiment: training variant '\(v.name)': \(error)")
            }
        }
        if let seeds {
            guard !seeds.isEmpty, Set(seeds).count == seeds.count else {
                throw DiffusionError("experiment: seeds must be a non-empty list without repeats, got \(seeds)")
            }
        }
        var labels = Set<String>()
        var grids: [String: String] = [:]
        for r in rows {
            guard labels.insert(r.label).inserted else { throw DiffusionError("experiment: duplicate row '\(r.label)'") }
            let grid = ExperimentRunner.fileName(r.label)
            if let other = grids.updateValue(r.label, forKey: grid) {
                throw DiffusionError("experiment: rows '\(other)' and '\(r.label)' would write the same grid \(grid).png; rename one")
            }
            for (name, value) in [("w", r.w), ("s", r.s)] {
                if let value, !value.isFinite || abs(value) > 1000 {
                    throw DiffusionError("experiment: row '\(r.label)': \(name) must be a finite number in [-1000, 1000], got \(value)")
                }
            }
            guard names.contains(r.training) else {
                throw DiffusionError("experiment: row '\(r.label)' names unknown training variant '\(r.training)'")
            }
            if r.guidance.usesGuideNetwork {
                guard let g = r.guide, names.contains(g) else {
                    throw DiffusionError("experiment: autoguidance row '\(r.label)' needs a known guide variant")
                }
            }
            for (name, iv) in [("igInterval", r.igInterval), ("cfgInterval", r.cfgInterval)] {
                if let iv, iv.count != 2 || iv[0] > iv[1] || iv[0] < 0 || iv[1] > 1 {
                    throw DiffusionError("experiment: row '\(r.label)': \(name) must be [lo, hi] within [0, 1]")
                }
            }
        }
        try validateComparisons()
    }

    func variant(_ name: String) -> TrainingVariant? { training.first { $0.name == name } }

    func validateComparisons() throws {
        let labels = Set(rows.map(\.label))
        for c in comparisons ?? [] where !labels.contains(c.a) || !labels.contains(c.b) {
            throw DiffusionError("experiment: comparison '\(c.label)' names a row that does not exist ('\(c.a)', '\(c.b)')")
        }
    }
}

extension ExperimentConfig.TrainingVariant {
    /// The full training configuration (Fashion-MNIST: 32×32, 1 channel, 10 classes).
    public func trainingConfig(seed: UInt64) -> TrainingConfig {
        let backbone = self.backbone ?? .sit
        let model = ModelConfig(backbone: backbone, inputSize: 32, inChannels: 1, learnSigma: false, patch: patch,
                                hidden: hidden, depth: depth, heads: heads, numClasses: 10, igLayer: igLayer)
        let fallback: Objective = backbone == .dit ? .ddpmEps : backbone == .sit ? .flowRepa : .flowSit
        let loss = LossSettings(objective: objective ?? fallback, igLambda: lambda ?? 0.5, omega: omega ?? 0)
        var optimizer = AdamWSettings()
        let decay = emaDecay ?? 0.9999
        optimizer.emaDecay = decay > 0 ? decay : nil
        return TrainingConfig(model: model, loss: loss, optimizer: optimizer, batch: batch, steps: steps,
                              learningRate: lr, warmupSteps: warmup ?? 0, seed: seed,
                              labelDropout: labelDropout ?? 0.1, precision: precision == .bf16 ? .bf16 : nil)
    }
}
