import ArgumentParser
import LoomData
import LoomDiffusion
import LoomSampling
import LoomGraphs
import LoomIR

/// Which sampler step graph `loom compile --graph sampler-step` builds: guidance mode, sampler and
/// the variant (doubled batch, or the undoubled one the loop runs where the CFG interval turns CFG
/// off). The solver's coefficients are runtime inputs, so every sampler shares one graph except
/// ancestral DDPM on a learn_sigma model (the learned-variance tail).
struct SamplerStepOptions: ParsableArguments {
    @Option(help: "sampler-step: guidance \(GuidanceMode.allCases.map(\.rawValue).joined(separator: ", ")).")
    var guidance: GuidanceMode = .igCfg

    @Option(help: "sampler-step: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (ddpm on a learn_sigma model adds the learned-variance tail).")
    var sampler: SamplerKind = .euler

    @Option(help: "sampler-step: CFG guides only the first N output channels (default all).")
    var cfgChannels: Int?

    @Flag(help: "sampler-step: the undoubled variant, run where the CFG interval turns CFG off.")
    var cfgOff = false

    /// The step graph of `model` at `batch`; autoguidance's guide is the same model at half depth.
    func graph(model config: ModelConfig, batch: Int) throws -> Graph {
        if let cfgChannels { try FlagCheck.count(cfgChannels, "--cfg-channels", max: config.outChannels) }
        let settings = GuidanceSettings(mode: guidance, weight: 1.5, cfgScale: 1.5, cfgChannels: cfgChannels)
        var guideConfig = config
        guideConfig.igLayer = nil
        guideConfig.depth = max(1, config.depth / 2)
        do {
            if guidance.usesIG && config.igLayer == nil {
                throw DiffusionError("--guidance \(guidance.rawValue) needs an IG head (--ig-layer)")
            }
            return try samplerStepGraph(model: try DiffusionTransformer(config),
                                        guideModel: guidance.usesGuideNetwork ? try DiffusionTransformer(guideConfig) : nil,
                                        batch: batch, guidance: settings, cfg: guidance.usesCFG && !cfgOff,
                                        learnedVariance: sampler == .ddpm && config.learnSigma)
        } catch let error as DiffusionError {
            throw ValidationError(error.message)
        }
    }
}
