import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

extension SamplerKind: ExpressibleByArgument {}
extension GuidanceMode: ExpressibleByArgument {}
extension SampleRecipe: ExpressibleByArgument {}
extension DDPMVariance: ExpressibleByArgument {}

/// `--heun-last-step`: how Heun's last interval ends.
enum HeunLastStep: String, CaseIterable, ExpressibleByArgument {
    /// A plain Euler step (REPA's and the IG code's sampler).
    case euler
    /// The full Heun correction (SiT's and LightningDiT's torchdiffeq `heun2`).
    case heun
}

/// `loom sample`: images from a checkpoint with IG, CFG, both, or autoguidance (with or without CFG).
struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Sample images from a `loom train` checkpoint or official weights with Internal Guidance and/or CFG; write a PNG grid (RGB through --vae) and the raw samples.",
        discussion: """
            Guidance intervals are given in noise level σ ∈ [0, 1] (σ = t for REPA-convention models, 1 − t for \
            SiT/LightningDiT, t/1000 for DDPM), e.g. --ig-interval 0.3,1. Outside the CFG interval only the \
            conditional half runs. The grid has one row per class (--per-class images each) unless --labels is given.
            """)

    @Option(help: "Checkpoint written by `loom train` (or --weights).") var checkpoint: String?
    @Option(help: "A paper's sampler settings: \(SampleRecipe.allCases.map(\.rawValue).joined(separator: ", ")) (Docs/conventions.md §1); flags given explicitly still win.")
    var recipe: SampleRecipe?
    @OptionGroup var official: OfficialWeightsOptions
    @Flag(inversion: .prefixedNo, help: "Use the EMA weights (default) or the raw weights.") var ema = true
    @Option(help: "Sampler: euler, heun, euler_maruyama, ddpm or ddim (default: euler for flow models, ddim for DDPM).")
    var sampler: SamplerKind?
    @Option(help: "Sampling steps (default 50, or the recipe's).") var steps: Int?
    @Option(help: "Timestep shift s for the SiT convention (t' = s·t/(1+(s−1)t)); default 1, none (or the recipe's).") var shift: Double?
    @Option(help: "DDPM variance: fixed_small, fixed_large or learned (learn_sigma models).") var ddpmVariance: DDPMVariance?
    @Option(help: "Heun's last interval: euler or heun (default: the official sampler of the objective, euler for flow_repa, heun for flow_sit).")
    var heunLastStep: HeunLastStep?
    @Option(help: "DDIM η (0: deterministic; 1: the ancestral variance).") var ddimEta: Double?
    @Option(help: "Guidance: \(GuidanceMode.allCases.map(\.rawValue).joined(separator: ", ")) (default ig+cfg, or the recipe's).") var guidance: GuidanceMode?
    @Option(help: "IG weight w (D_i + w·(D_f − D_i)); also the autoguidance weight (default 1.5, or the recipe's).") var igWeight: Double?
    @Option(help: "CFG scale s (default 1.5, or the recipe's).") var cfgScale: Double?
    @Option(help: "IG interval in σ, as lo,hi (default 0,1, or the recipe's).") var igInterval: String?
    @Option(help: "CFG interval in σ, as lo,hi (default 0,1, or the recipe's).") var cfgInterval: String?
    @Option(help: "Guide only the first N output channels with CFG (the original DiT code uses 3); default all.")
    var cfgChannels: Int?
    @Option(help: "Autoguidance: the weaker model's checkpoint.") var guideCheckpoint: String?
    @Option(help: "Images per class (one grid row per class).") var perClass = 8
    @Option(help: "Comma-separated class labels instead of every class.") var labels: String?
    @Option(help: "Start from this noise (safetensors with `x` [N, C, H, W]) instead of the seeded noise.")
    var initNoise: String?
    @Option(help: "Seed of the initial and per-step noise.") var seed: UInt64 = 0
    @Option(help: "Batch size of the compiled step plan.") var batch = 16
    @Option(help: "Output folder (grid.png, samples.safetensors).") var out = "runs/samples"
    @Option(help: "Upscale factor of the PNG grid.") var scale = 2
    @Flag(help: "Run the reference executor instead of compiled plans.") var reference = false
    @Flag(help: "Report time per step and per block, and each guidance mode's cost relative to none.") var profile = false
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?
    @Option(help: "Operand precision of the matrix products: \(PrecisionPolicy.spelled).") var precision: PrecisionPolicy = .fp32
    @OptionGroup var shards: ShardOptions
    @OptionGroup var vaeOptions: VAEOptions

    func validate() throws {
        if let steps { try FlagCheck.count(steps, "--steps", max: 100_000) }
        try FlagCheck.count(perClass, "--per-class", max: 1_000_000)
        try FlagCheck.count(batch, "--batch", max: 1 << 20)
        try FlagCheck.count(scale, "--scale", max: 64)
        if let igWeight { try FlagCheck.real(igWeight, "--ig-weight", -1e6...1e6) }
        if let cfgScale { try FlagCheck.real(cfgScale, "--cfg-scale", -1e6...1e6) }
        if let shift { try FlagCheck.real(shift, "--shift", 1e-6...1e6) }
        try shards.validate()
        try vaeOptions.validate()
        guard (checkpoint == nil) != (official.weights == nil) else {
            throw ValidationError("give exactly one of --checkpoint (a `loom train` checkpoint) and --weights (official keys)")
        }
        if let ddimEta { try FlagCheck.real(ddimEta, "--ddim-eta", 0...1e6) }
        if heunLastStep != nil && (sampler ?? recipe?.settings.sampler) != .heun {
            throw ValidationError("--heun-last-step applies to --sampler heun only")
        }
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }

    func run() throws {
        do { try sample() } catch let error as DiffusionError { throw ValidationError(error.message) }
    }

    func interval(_ text: String, _ flag: String) throws -> NoiseInterval {
        let parts = text.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, parts[0] <= parts[1], parts[0] >= 0, parts[1] <= 1 else {
            throw DiffusionError("\(flag) must be lo,hi with 0 ≤ lo ≤ hi ≤ 1, got '\(text)'")
        }
        return NoiseInterval(lo: parts[0], hi: parts[1])
    }

    func sample() throws {
        // Each setting: the flag, else the recipe's, else the default (these locals shadow the flags).
        let preset = recipe?.settings
        let sampler = self.sampler ?? preset?.sampler
        let steps = self.steps ?? preset?.steps ?? 50
        let shift = self.shift ?? preset?.shift ?? 1
        let guidance = self.guidance ?? preset?.guidance ?? .igCfg
        let igWeight = self.igWeight ?? preset?.igWeight ?? 1.5
        let cfgScale = self.cfgScale ?? preset?.cfgScale ?? 1.5
        let igInterval = self.igInterval ?? preset.map { "\($0.igInterval.lo),\($0.igInterval.hi)" } ?? "0,1"
        let cfgInterval = self.cfgInterval ?? preset.map { "\($0.cfgInterval.lo),\($0.cfgInterval.hi)" } ?? "0,1"
        let cfgChannels = self.cfgChannels ?? preset?.cfgChannels
        if let recipe {
            print("recipe \(recipe.rawValue): \(sampler?.rawValue ?? "?") \(steps) steps, shift \(shift), \(guidance.rawValue), "
                  + "IG w \(igWeight) on σ∈[\(igInterval)], CFG s \(cfgScale) on σ∈[\(cfgInterval)]"
                  + (cfgChannels.map { ", CFG on the first \($0) channels" } ?? ""))
        }
        let loaded = try checkpoint.map { try CheckpointWeights.load(path: $0, ema: ema) } ?? official.load()
        let source = checkpoint ?? official.weights!
        let model = loaded.config.model
        let objective = loaded.config.loss.objective
        let kind = sampler ?? (objective == .ddpmEps ? .ddim : .euler)
        let variance = ddpmVariance ?? (model.learnSigma ? .learned : .fixedSmall)
        if ddimEta != nil && kind != .ddim {
            throw DiffusionError("--ddim-eta applies to --sampler ddim only, the sampler is \(kind.rawValue)")
        }
        let settings = SamplerSettings(kind: kind, steps: steps, objective: objective, shift: shift,
                                       heunLastStepEuler: heunLastStep.map { $0 == .euler }, ddimEta: ddimEta ?? 0,
                                       ddpmVariance: variance)
        try settings.validate()
        let guidanceSettings = GuidanceSettings(mode: guidance, weight: igWeight, cfgScale: cfgScale,
                                                igInterval: try interval(igInterval, "--ig-interval"),
                                                cfgInterval: try interval(cfgInterval, "--cfg-interval"),
                                                cfgChannels: cfgChannels)
        var guide: (ModelConfig, [String: HostTensor])?
        if let guideCheckpoint {
            let g = try CheckpointWeights.load(path: guideCheckpoint, ema: ema)
            guide = (g.config.model, g.weights)
        }
        let labelList: [Int64]
        var rows: Int
        if let labels {
            labelList = try labels.split(separator: ",").map {
                guard let v = Int64($0.trimmingCharacters(in: .whitespaces)) else { throw DiffusionError("--labels: '\($0)' is not an integer") }
                return v
            }
            guard !labelList.isEmpty else { throw DiffusionError("--labels: no labels given (expected e.g. --labels 0,3,7)") }
            rows = max(1, Int(Double(labelList.count).squareRoot()))
        } else {
            guard perClass > 0 else { throw DiffusionError("--per-class must be positive") }
            labelList = (0..<model.numClasses).flatMap { c in [Int64](repeating: Int64(c), count: perClass) }
            rows = model.numClasses
        }
        if shards.numImages != nil {
            let job = SamplingJob(model: model, weights: loaded.weights, guide: guide, sampler: settings,
                                  guidance: guidanceSettings, batch: min(batch, shards.shardSize), seed: seed,
                                  threads: try Threading.resolve(threads), reference: reference, precision: precision)
            let description = "\(source) step \(loaded.step)\(ema ? " EMA" : ""); \(model.displayName); \(kind.rawValue) \(steps) steps, "
                + "shift \(shift); \(guidance.rawValue) w \(igWeight) s \(cfgScale) ig \(igInterval) cfg \(cfgInterval); "
                + "seed \(seed); batch \(job.batch); \(precision.rawValue)"
            try shards.run(job: job, description: description, vae: try vaeOptions.codec(threads: job.threads),
                           vaeBatch: vaeOptions.vaeBatch)
            return
        }
        var noise: HostTensor?
        if let initNoise {
            let file = try SafeTensors.read(path: initNoise)
            guard let x = file.tensors["x"] else { throw DiffusionError("\(initNoise): no tensor \"x\"") }
            noise = x
        }
        let job = SamplingJob(model: model, weights: loaded.weights, guide: guide, sampler: settings,
                              guidance: guidanceSettings, batch: min(batch, labelList.count), seed: seed,
                              threads: try Threading.resolve(threads), reference: reference, precision: precision)
        print("sampling \(labelList.count) images from \(model.displayName) (step \(loaded.step)\(ema ? ", EMA" : "")): "
              + "\(kind.rawValue) \(steps) steps, \(guidance.rawValue) (w \(igWeight), s \(cfgScale))")
        let started = Date()
        var lastReport = Date.distantPast
        let codec = try vaeOptions.codec(threads: job.threads)
        if let codec, codec.config.latentChannels != model.inChannels {
            throw DiffusionError("--vae \(vaeOptions.vae!) has \(codec.config.latentChannels) latent channels; \(model.displayName) samples \(model.inChannels)")
        }
        let samples = try job.run(labels: labelList, initialNoise: noise) { first, p in
            if Date().timeIntervalSince(lastReport) > 1 || p.evaluation + 1 == p.evaluations {
                lastReport = Date()
                print("  images \(first)…  evaluation \(p.evaluation + 1)/\(p.evaluations)  σ \(String(format: "%.3f", p.sigma))\(p.cfg ? " (CFG)" : "")")
                fflush(stdout)
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var images: HostTensor?
        if let codec {
            let decodeStart = Date()
            images = try codec.decode(samples, batch: vaeOptions.vaeBatch) { done, total in
                print("  decoded \(done)/\(total)")
                fflush(stdout)
            }
            try writeImages(images!, labels: labelList, folder: out + "/images")
            print(String(format: "decoded %d images with the VAE (%.1f s, %.2f s per image)", labelList.count,
                         Date().timeIntervalSince(decodeStart), Date().timeIntervalSince(decodeStart) / Double(labelList.count)))
        }
        let grid = out + "/grid.png"
        // Both outputs or neither: each is written under a staging name, then both are renamed.
        let staging = (grid: out + "/.grid.png.partial-\(getpid())", samples: out + "/.samples.safetensors.partial-\(getpid())")
        defer { for path in [staging.grid, staging.samples] { unlink(path) } }
        try ImageGrid.write(images ?? samples, rows: rows, to: staging.grid, padding: 2, scale: images == nil ? scale : 1)
        try SafeTensors.write([("samples", samples), ("labels", HostTensor(shape: [labelList.count], ints: labelList))],
                              metadata: ["checkpoint": source, "sampler": kind.rawValue, "guidance": guidance.rawValue],
                              to: staging.samples)
        guard rename(staging.samples, out + "/samples.safetensors") == 0 else {
            throw DiffusionError("cannot write \(out)/samples.safetensors: \(String(cString: strerror(errno)))")
        }
        guard rename(staging.grid, grid) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(out + "/samples.safetensors")
            throw DiffusionError("cannot write \(grid): \(reason) (samples.safetensors removed: both or neither)")
        }
        print(String(format: "wrote %@ and %@/samples.safetensors (%.1f s, %.2f s per image)", grid, out, elapsed,
                     elapsed / Double(labelList.count)))
        if profile { try GuidanceCostReport.print(job: job, hasGuide: guide != nil) }
    }
}

extension SampleCommand {
    /// One PNG per decoded image, `<index>-class<label>.png`, in `folder` (each written atomically).
    func writeImages(_ images: HostTensor, labels: [Int64], folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (index, label) in labels.enumerated() {
            try ImageGrid.write(images.items(index, 1), rows: 1, to: String(format: "%@/%06d-class%lld.png", folder, index, label), padding: 0, scale: 1)
        }
    }
}

/// `loom sample --profile`: one step of each guidance mode, timed side by side.
enum GuidanceCostReport {
    static func print(job: SamplingJob, hasGuide: Bool) throws {
        Swift.print("\nstep cost per guidance mode (batch \(job.batch), median of 5 runs each, interleaved):")
        let entries = try GuidanceCost.measure(model: job.model, weights: job.weights, guide: job.guide,
                                               batch: job.batch, threads: job.threads)
        for entry in entries {
            Swift.print(String(format: "  %-13@ %8.1f ms   %.3f× none", entry.mode.rawValue as NSString,
                               entry.seconds * 1000, entry.ratio))
        }
        if let chosen = entries.first(where: { $0.mode == job.guidance.mode }) ?? entries.last {
            Swift.print("time per block of one \(chosen.mode.rawValue) step:")
            for (block, seconds) in chosen.blocks {
                Swift.print(String(format: "  %-12@ %8.2f ms", block as NSString, seconds * 1000))
            }
        }
    }
}
