import LoomIR

/// The configuration of a KL autoencoder (`AutoencoderKL` of diffusers and of latent diffusion):
/// its topology, and how the latents a generator works in map to the VAE's own latent space.
/// Docs/pretrained.md lists the released models' values.
public struct VAEConfig: Codable, Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    /// z: channels of the latent (the encoder emits 2z: mean and log-variance).
    public var latentChannels: Int
    /// Channels of each resolution level, finest first; each level but the last halves the size.
    public var blockOutChannels: [Int]
    /// ResNet blocks per encoder level (the decoder has one more per level).
    public var layersPerBlock: Int
    /// GroupNorm groups (latent diffusion's code fixes 32) and epsilon.
    public var normGroups = 32
    public var normEps: Float = 1e-6
    /// Self-attention in the middle block of the encoder and of the decoder.
    public var midAttention = true
    /// Levels (encoder numbering, finest 0) whose blocks each end with self-attention
    /// (latent diffusion's `attn_resolutions`); the decoder mirrors them.
    public var attentionLevels: [Int] = []
    /// The 1×1 convolutions between the encoder and the posterior, and before the decoder.
    public var quantConv = true
    public var postQuantConv = true
    /// Generator latent → VAE latent: `z_vae = z·scale_c + shift_c` per channel. For SD-VAE
    /// scale = 1/scaling_factor and shift = shift_factor; for VA-VAE under LightningDiT,
    /// scale = std_c / multiplier and shift = mean_c (the latent statistics). One value applies to
    /// every channel.
    public var latentScale: [Float] = [1]
    public var latentShift: [Float] = [0]

    public init(latentChannels: Int, blockOutChannels: [Int], layersPerBlock: Int) {
        self.latentChannels = latentChannels
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
    }

    /// Image size over latent size.
    public var downsamplingFactor: Int { 1 << max(blockOutChannels.count - 1, 0) }

    /// SD-VAE (`stabilityai/sd-vae-ft-ema`, also ft-MSE): f8, 4 channels, scaling factor 0.18215.
    public static var sdVAE: VAEConfig {
        var c = VAEConfig(latentChannels: 4, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2)
        c.latentScale = [1 / 0.18215]
        return c
    }

    /// VA-VAE (LightningDiT's `vavae-imagenet256-f16d32-dinov2`): f16, 32 channels, latent
    /// diffusion's layout. Its latent statistics are a separate file (`--latent-stats`).
    public static var vaVAE: VAEConfig {
        var c = VAEConfig(latentChannels: 32, blockOutChannels: [128, 128, 256, 256, 512], layersPerBlock: 2)
        c.attentionLevels = [4]  // attn_resolutions [16]: the coarsest level of a 256 input
        return c
    }

    /// Throws when the configuration cannot describe a model (hostile or damaged files): every
    /// count positive and bounded, channels divisible by the groups, statistics of the right length.
    public func validate(source: String) throws {
        func fail(_ why: String) -> IRError { IRError("\(source): VAE configuration: \(why)") }
        let limit = 1 << 16
        guard (1...limit).contains(inChannels), (1...limit).contains(outChannels), (1...limit).contains(latentChannels) else {
            throw fail("channel counts must lie in 1…\(limit) (in \(inChannels), out \(outChannels), latent \(latentChannels))")
        }
        guard (1...8).contains(blockOutChannels.count), blockOutChannels.allSatisfy({ (1...limit).contains($0) }) else {
            throw fail("block_out_channels must list 1…8 levels of 1…\(limit) channels, got \(blockOutChannels)")
        }
        guard (1...16).contains(layersPerBlock) else { throw fail("layers_per_block must lie in 1…16, got \(layersPerBlock)") }
        guard normGroups >= 1, blockOutChannels.allSatisfy({ $0 % normGroups == 0 }) else {
            throw fail("every level's channels \(blockOutChannels) must be a multiple of norm_num_groups \(normGroups)")
        }
        guard normEps > 0, normEps.isFinite else { throw fail("norm eps must be positive, got \(normEps)") }
        guard attentionLevels.allSatisfy({ blockOutChannels.indices.contains($0) }) else {
            throw fail("attention levels \(attentionLevels) outside the \(blockOutChannels.count) levels")
        }
        for (name, values) in [("scale", latentScale), ("shift", latentShift)] {
            guard values.count == 1 || values.count == latentChannels, values.allSatisfy(\.isFinite) else {
                throw fail("latent \(name) needs 1 or \(latentChannels) finite values, got \(values.count)")
            }
        }
        guard latentScale.allSatisfy({ $0 != 0 }) else { throw fail("latent scale must not be 0") }
    }

    /// Per-channel scale and shift, expanded to `latentChannels` values.
    public var channelScale: [Float] { latentScale.count == 1 ? Array(repeating: latentScale[0], count: latentChannels) : latentScale }
    public var channelShift: [Float] { latentShift.count == 1 ? Array(repeating: latentShift[0], count: latentChannels) : latentShift }
}
