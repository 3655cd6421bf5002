import LoomData
import LoomRuntime

/// The two key layouts KL autoencoders ship in, and the translation of latent diffusion's keys
/// (CompVis `ldm`, VA-VAE) into diffusers' (`AutoencoderKL`), which Loom's VAE graphs use.
public enum VAEKeyLayout: String, Sendable {
    /// `encoder.down_blocks.0.resnets.0.conv1.weight`, attention as `to_q` … Linear weights.
    case diffusers
    /// `encoder.down.0.block.0.conv1.weight`, attention as `q` … 1×1 convolutions, decoder levels
    /// numbered coarsest last (`decoder.up.0` is diffusers' last `up_blocks`).
    case latentDiffusion = "ldm"

    /// The layout of a state dict, from its keys; nil when neither matches.
    public static func detect(_ keys: [String]) -> VAEKeyLayout? {
        if keys.contains(where: { $0.hasPrefix("encoder.down_blocks.") || $0.hasPrefix("decoder.up_blocks.") }) { return .diffusers }
        if keys.contains(where: { $0.hasPrefix("encoder.down.") || $0.hasPrefix("decoder.up.") }) { return .latentDiffusion }
        return nil
    }

    /// Whether a key belongs to the autoencoder (training checkpoints also hold the loss's
    /// discriminator and perceptual network, which are dropped).
    public static func isAutoencoderKey(_ key: String) -> Bool {
        ["encoder.", "decoder.", "quant_conv.", "post_quant_conv."].contains { key.hasPrefix($0) }
    }

    /// Latent diffusion's key → diffusers' key. `levels`: resolution levels (to renumber the decoder's).
    /// Nil for a key with no diffusers counterpart.
    public static func diffusersKey(ldm key: String, levels: Int) -> String? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2 else { return nil }
        let part = parts[0]
        func renamed(_ rest: ArraySlice<String>) -> [String]? {
            // Inside a ResNet or attention block: the leaf names.
            guard let first = rest.first else { return nil }
            let names = ["nin_shortcut": "conv_shortcut", "norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v",
                         "proj_out": "to_out.0"]
            return [names[first] ?? first] + rest.dropFirst()
        }
        switch part {
        case "quant_conv", "post_quant_conv":
            return key
        case "encoder", "decoder":
            let rest = parts.dropFirst()
            guard let head = rest.first else { return nil }
            switch head {
            case "conv_in", "conv_out": return key
            case "norm_out": return ([part, "conv_norm_out"] + rest.dropFirst()).joined(separator: ".")
            case "mid":
                guard rest.count >= 3 else { return nil }
                let block = rest[rest.startIndex + 1]
                let mapped: String
                switch block {
                case "block_1": mapped = "resnets.0"
                case "block_2": mapped = "resnets.1"
                case "attn_1": mapped = "attentions.0"
                default: return nil
                }
                guard let leaf = renamed(rest.dropFirst(2)) else { return nil }
                return ([part, "mid_block", mapped] + leaf).joined(separator: ".")
            case "down", "up":
                guard rest.count >= 4, let level = Int(rest[rest.startIndex + 1]), level >= 0, level < levels else { return nil }
                let index = part == "decoder" ? levels - 1 - level : level
                let blockName = part == "decoder" ? "up_blocks" : "down_blocks"
                let kind = rest[rest.startIndex + 2]
                switch kind {
                case "block", "attn":
                    guard rest.count >= 5, Int(rest[rest.startIndex + 3]) != nil, let leaf = renamed(rest.dropFirst(4)) else { return nil }
                    let group = kind == "block" ? "resnets" : "attentions"
                    return ([part, "\(blockName).\(index)", group, rest[rest.startIndex + 3]] + leaf).joined(separator: ".")
                case "downsample", "upsample":
                    let sampler = kind == "downsample" ? "downsamplers" : "upsamplers"
                    return ([part, "\(blockName).\(index)", "\(sampler).0"] + rest.dropFirst(3)).joined(separator: ".")
                default: return nil
                }
            default: return nil
            }
        default:
            return nil
        }
    }

    /// Whether a diffusers key is an attention projection (a [C, C] Linear weight that latent
    /// diffusion stores as a [C, C, 1, 1] convolution).
    static func isAttentionProjection(_ key: String) -> Bool {
        key.contains(".attentions.") && key.hasSuffix(".weight")
            && ["to_q", "to_k", "to_v", "to_out.0"].contains { key.hasSuffix(".\($0).weight") }
    }

    /// A latent-diffusion state dict in diffusers' keys and shapes; throws naming the first key it
    /// cannot place.
    public static func translate(ldm tensors: [(String, HostTensor)], source: String) throws -> [(String, HostTensor)] {
        let levels = Set(tensors.compactMap { (key, _) -> Int? in
            let parts = key.split(separator: ".")
            guard parts.count > 2, parts[0] == "encoder", parts[1] == "down" else { return nil }
            return Int(parts[2])
        }).count
        return try tensors.map { key, value in
            guard let mapped = diffusersKey(ldm: key, levels: levels) else {
                throw DiffusionError("\(source): \(key) is not a key of latent diffusion's AutoencoderKL")
            }
            guard isAttentionProjection(mapped) else { return (mapped, value) }
            guard value.shape.count == 4, value.shape[2] == 1, value.shape[3] == 1 else {
                throw DiffusionError("\(source): \(key) has shape \(value.shape), expected a 1×1 convolution [C, C, 1, 1]")
            }
            return (mapped, HostTensor(shape: [value.shape[0], value.shape[1]], floats: value.floats))
        }
    }
}
