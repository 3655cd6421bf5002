import Foundation
import LoomData
import LoomGraphs
import LoomIR
import LoomRuntime

/// A KL autoencoder's weights in diffusers' keys with the configuration they were made with, read
/// from either layout: a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`, as
/// `sd-vae-ft-ema` ships), or one latent-diffusion state dict (`.safetensors`, or a PyTorch
/// checkpoint holding it at the top level or under `state_dict`, as VA-VAE ships).
public struct VAEWeights {
    public var config: VAEConfig
    /// Diffusers keys → values, exactly the graphs' parameters.
    public var tensors: [String: HostTensor]
    public var layout: VAEKeyLayout
    /// Keys of the file that are not the autoencoder's (a training checkpoint's loss networks).
    public var dropped: [String]
    public let source: String

    /// Reads `path`. `base` supplies what a latent-diffusion file does not store (its latent
    /// normalisation; GroupNorm groups are 32 there); a diffusers folder's `config.json` wins over it.
    public init(path: String, base: VAEConfig? = nil) throws {
        source = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DiffusionError("--vae \(path): no such file or folder")
        }
        var entries: [(String, HostTensor)]
        var folderConfig: DiffusersVAEConfig?
        if isDirectory.boolValue {
            let configPath = (path as NSString).appendingPathComponent("config.json")
            let weightsPath = (path as NSString).appendingPathComponent("diffusion_pytorch_model.safetensors")
            guard FileManager.default.fileExists(atPath: configPath), FileManager.default.fileExists(atPath: weightsPath) else {
                throw DiffusionError("--vae \(path): a diffusers VAE folder holds config.json and diffusion_pytorch_model.safetensors")
            }
            folderConfig = try DiffusersVAEConfig(path: configPath)
            entries = try SafeTensors.read(path: weightsPath).orderedTensors
        } else if path.hasSuffix(".safetensors") {
            entries = try SafeTensors.read(path: path).orderedTensors
        } else {
            let checkpoint = try TorchCheckpoint(path: path)
            if let nested = try? checkpoint.stateDict(key: "state_dict") {
                entries = nested
            } else {
                entries = try checkpoint.stateDict(key: nil)
            }
        }
        dropped = entries.map(\.0).filter { !VAEKeyLayout.isAutoencoderKey($0) }
        entries = entries.filter { VAEKeyLayout.isAutoencoderKey($0.0) }
        guard let layout = VAEKeyLayout.detect(entries.map(\.0)) else {
            throw DiffusionError("\(path): no autoencoder keys (expected encoder.down_blocks.… or encoder.down.…)")
        }
        self.layout = layout
        if layout == .latentDiffusion { entries = try VAEKeyLayout.translate(ldm: entries, source: path) }
        var tensors: [String: HostTensor] = [:]
        for (key, value) in entries {
            guard tensors.updateValue(value, forKey: key) == nil else { throw DiffusionError("\(path): key \(key) appears twice") }
        }
        var config = try Self.inferConfig(tensors, source: path, base: base)
        if let folderConfig { try folderConfig.apply(to: &config, source: path) }
        try config.validate(source: path)
        self.config = config
        self.tensors = tensors
        try checkAgainstGraphs()
    }

    /// Topology from the shapes (diffusers keys): channels per level from each level's first ResNet,
    /// layers from the first level's ResNets, attention where the keys have it.
    static func inferConfig(_ t: [String: HostTensor], source: String, base: VAEConfig?) throws -> VAEConfig {
        func shape(_ key: String) throws -> [Int] {
            guard let value = t[key] else { throw DiffusionError("\(source): missing \(key)") }
            return value.shape
        }
        var channels: [Int] = []
        while let conv = t["encoder.down_blocks.\(channels.count).resnets.0.conv1.weight"] { channels.append(conv.shape[0]) }
        var layers = 0
        while t["encoder.down_blocks.0.resnets.\(layers).conv1.weight"] != nil { layers += 1 }
        guard !channels.isEmpty, layers > 0 else { throw DiffusionError("\(source): no encoder.down_blocks.0.resnets.0.conv1.weight") }
        let latent = try shape("decoder.conv_in.weight")
        guard latent.count == 4 else { throw DiffusionError("\(source): decoder.conv_in.weight has shape \(latent)") }
        var config = base ?? VAEConfig(latentChannels: latent[1], blockOutChannels: channels, layersPerBlock: layers)
        config.latentChannels = latent[1]
        config.blockOutChannels = channels
        config.layersPerBlock = layers
        config.inChannels = try shape("encoder.conv_in.weight").dropFirst().first ?? 0
        config.outChannels = try shape("decoder.conv_out.weight").first ?? 0
        config.midAttention = t["encoder.mid_block.attentions.0.to_q.weight"] != nil
        config.attentionLevels = channels.indices.filter { t["encoder.down_blocks.\($0).attentions.0.to_q.weight"] != nil }
        config.quantConv = t["quant_conv.weight"] != nil
        config.postQuantConv = t["post_quant_conv.weight"] != nil
        return config
    }

    /// Every parameter of both graphs present with its shape, and nothing else.
    func checkAgainstGraphs() throws {
        let model = try AutoencoderKL(config)
        let f = config.downsamplingFactor
        var expected: [String: [Int]] = [:]
        for graph in [try model.encoderGraph(batch: 1, height: f, width: f), try model.decoderGraph(batch: 1, latentHeight: 1, latentWidth: 1)] {
            for node in graph.parameterNodes {
                if case .parameter(let name, _, _) = node.op { expected[name] = node.type.shape }
            }
        }
        for (key, shape) in expected.sorted(by: { $0.key < $1.key }) {
            guard let value = tensors[key] else { throw DiffusionError("\(source): missing \(key) (\(layout.rawValue) layout)") }
            guard value.shape == shape else {
                throw DiffusionError("\(source): \(key) has shape \(value.shape), the configuration needs \(shape)")
            }
        }
        let extra = tensors.keys.filter { expected[$0] == nil }.sorted()
        if !extra.isEmpty {
            throw DiffusionError("\(source): \(extra.count) key(s) the configuration does not use: \(extra.prefix(4).joined(separator: ", "))")
        }
    }

    /// The tensors one graph reads.
    public func parameters(of graph: Graph) -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for node in graph.parameterNodes {
            if case .parameter(let name, _, _) = node.op { out[name] = tensors[name] }
        }
        return out
    }
}

/// The fields of a diffusers `AutoencoderKL` `config.json` that Loom reads.
struct DiffusersVAEConfig: Decodable {
    var _class_name: String?
    var in_channels: Int?
    var out_channels: Int?
    var latent_channels: Int?
    var block_out_channels: [Int]?
    var layers_per_block: Int?
    var norm_num_groups: Int?
    var scaling_factor: Float?
    var shift_factor: Float?
    var use_quant_conv: Bool?
    var use_post_quant_conv: Bool?
    var mid_block_add_attention: Bool?
    var act_fn: String?
    var latents_mean: [Float]?
    var latents_std: [Float]?

    init(path: String) throws {
        if let problem = FileKind.problem(with: path) { throw DiffusionError("cannot read \(path): it \(problem)") }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int, size <= 1 << 20,
              let data = try? FileKind.contents(of: path) else {
            throw DiffusionError("\(path): unreadable, or larger than the 1 MiB a config.json may take")
        }
        do {
            self = try JSONDecoder().decode(DiffusersVAEConfig.self, from: data)
        } catch {
            throw DiffusionError("\(path): not a diffusers AutoencoderKL config.json (\(error))")
        }
        if let name = _class_name, name != "AutoencoderKL" {
            throw DiffusionError("\(path): _class_name is \(name); Loom reads AutoencoderKL")
        }
    }

    /// Checks the file's topology against the shapes and takes what shapes cannot tell.
    func apply(to config: inout VAEConfig, source: String) throws {
        func agree<T: Equatable>(_ name: String, _ stated: T?, _ inferred: T) throws {
            if let stated, stated != inferred {
                throw DiffusionError("\(source): config.json says \(name) = \(stated), the weights have \(inferred)")
            }
        }
        try agree("block_out_channels", block_out_channels, config.blockOutChannels)
        try agree("layers_per_block", layers_per_block, config.layersPerBlock)
        try agree("latent_channels", latent_channels, config.latentChannels)
        try agree("in_channels", in_channels, config.inChannels)
        try agree("out_channels", out_channels, config.outChannels)
        try agree("mid_block_add_attention", mid_block_add_attention, config.midAttention)
        try agree("use_quant_conv", use_quant_conv, config.quantConv)
        try agree("use_post_quant_conv", use_post_quant_conv, config.postQuantConv)
        if let act_fn, act_fn != "silu" { throw DiffusionError("\(source): act_fn \(act_fn): Loom's VAE graphs use silu") }
        if let groups = norm_num_groups { config.normGroups = groups }
        let factor = scaling_factor ?? 1
        guard factor.isFinite, factor != 0 else { throw DiffusionError("\(source): scaling_factor \(factor) is not usable") }
        config.latentScale = [1 / factor]
        config.latentShift = [shift_factor ?? 0]
        // Per-channel statistics, as diffusers' pipelines apply them: z = x·std/factor + mean.
        switch (latents_mean, latents_std) {
        case (nil, nil): break
        case (let mean?, let std?):
            guard mean.count == config.latentChannels, std.count == config.latentChannels else {
                throw DiffusionError("\(source): latents_mean and latents_std need \(config.latentChannels) values each")
            }
            config.latentScale = std.map { $0 / factor }
            config.latentShift = mean
        default:
            throw DiffusionError("\(source): latents_mean and latents_std come together")
        }
    }
}
