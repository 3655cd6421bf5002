import ArgumentParser
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomSampling
import LoomTraining

extension Backbone: ExpressibleByArgument {}
extension ModelPreset: ExpressibleByArgument {}
extension Objective: ExpressibleByArgument {}

/// Which graph of a model to build.
enum GraphKind: String, ExpressibleByArgument, CaseIterable {
    case forward, loss
}

/// A zoo model by name: a transformer backbone, or a KL autoencoder's released configuration.
enum ZooModel: String, ExpressibleByArgument, CaseIterable {
    case dit, sit, lightningdit
    case sdVAE = "sd-vae"
    case vaVAE = "va-vae"

    /// The autoencoder configuration, for the VAE names.
    var vae: VAEConfig? {
        switch self {
        case .sdVAE: return .sdVAE
        case .vaVAE: return .vaVAE
        default: return nil
        }
    }
}

/// The flags that pick a zoo model; defaults follow the official configurations.
struct ModelOptions: ParsableArguments {
    @Argument(help: "Model: dit, sit or lightningdit; sd-vae or va-vae (autoencoders, for `compile` and `profile` with --graph decoder|encoder).")
    var model: ZooModel

    /// The transformer backbone; a usage error for the autoencoders.
    func backbone() throws -> Backbone {
        guard let backbone = Backbone(rawValue: model.rawValue) else {
            throw ValidationError("\(model.rawValue) is an autoencoder: this command takes dit, sit or lightningdit")
        }
        return backbone
    }

    @Option(help: "Size preset: S, B, L or XL.")
    var preset: ModelPreset = .S

    @Option(help: "Patch size (default 2 for dit/sit, 1 for lightningdit).")
    var patch: Int?

    @Option(help: "Input height = width (default 32 for dit/sit, 16 for lightningdit).")
    var inputSize: Int?

    @Option(help: "Input channels (default 4 for dit/sit, 32 for lightningdit).")
    var channels: Int?

    @Option(help: "Number of classes (default 1000; the label table has one more row, the null label).")
    var classes: Int?

    @Option(help: "Learn the variance (doubles the output channels); default on for dit only.")
    var learnSigma: Bool?

    @Option(help: "Batch size of the traced graph.")
    var batch: Int = 8

    @Option(help: "Attach the IG head after this many blocks (1-based).")
    var igLayer: Int?

    @Option(help: "Hidden width, overriding the preset.")
    var hidden: Int?

    @Option(help: "Depth, overriding the preset.")
    var depth: Int?

    @Option(help: "Attention heads, overriding the preset.")
    var heads: Int?

    /// The resolved architecture.
    func config() throws -> ModelConfig {
        var config = ModelConfig.preset(try backbone(), preset, patch: patch, igLayer: igLayer)
        if let inputSize { config.inputSize = inputSize }
        if let channels { config.inChannels = channels }
        if let learnSigma { config.learnSigma = learnSigma }
        if let hidden { config.hidden = hidden }
        if let depth { config.depth = depth }
        if let heads { config.heads = heads }
        config.numClasses = classes ?? 1000
        guard batch > 0 else { throw ValidationError("--batch must be positive, got \(batch)") }
        do { try config.validate() } catch let error as IRError { throw ValidationError(error.message) }
        return config
    }
}

/// The objective and loss weights of a loss graph.
struct LossOptions: ParsableArguments {
    @Option(help: "Objective: ddpm_eps, flow_repa (t=1 noise, IG-SiT) or flow_sit (t=0 noise). Default: ddpm_eps for dit, flow_repa for sit, flow_sit for lightningdit.")
    var objective: Objective?

    @Option(name: .customLong("lambda"), help: "Weight λ of the IG head's loss.")
    var igLambda: Float = 0.5

    @Flag(help: "Add LightningDiT's cosine velocity-direction loss.")
    var cosineLoss = false

    func settings(for backbone: Backbone) -> LossSettings {
        let fallback: Objective = backbone == .dit ? .ddpmEps : backbone == .sit ? .flowRepa : .flowSit
        return LossSettings(objective: objective ?? fallback, igLambda: igLambda, cosineLoss: cosineLoss)
    }
}
