import LoomIR

/// A KL autoencoder as two graphs, declared with diffusers' parameter keys: the encoder (image →
/// diagonal Gaussian posterior and a sample of it) and the decoder (latent → image).
public struct AutoencoderKL {
    public let config: VAEConfig

    public init(_ config: VAEConfig) throws {
        try config.validate(source: "model")
        self.config = config
    }

    /// `image [N, in, H, W]` and `noise [N, z, H/f, W/f]` → posterior mean, log-variance and sample.
    public func encoderGraph(batch: Int, height: Int, width: Int) throws -> Graph {
        let c = config, f = c.downsamplingFactor
        guard batch > 0, height > 0, width > 0, height % f == 0, width % f == 0 else {
            throw IRError("VAE encoder: image \(height)×\(width) (batch \(batch)) must be positive multiples of the downsampling factor \(f)")
        }
        let b = GraphBuilder(name: "vae_encoder")
        let image = b.input(Naming.vaeImageInput, TensorType(.f32, [batch, c.inChannels, height, width]))
        let noise = b.input(Naming.vaeNoiseInput, TensorType(.f32, [batch, c.latentChannels, height / f, width / f]))
        var h = b.scoped("encoder") { () -> Tensor in
            var h = conv(b, "conv_in", image, c.blockOutChannels[0], kernel: 3)
            for (level, channels) in c.blockOutChannels.enumerated() {
                h = b.scoped("down_blocks.\(level)") {
                    var h = h
                    for layer in 0..<c.layersPerBlock {
                        h = resnetBlock(b, "resnets.\(layer)", h, channels, groups: c.normGroups, eps: c.normEps)
                        if c.attentionLevels.contains(level) {
                            h = spatialAttention(b, "attentions.\(layer)", h, groups: c.normGroups, eps: c.normEps)
                        }
                    }
                    return level == c.blockOutChannels.count - 1 ? h : downsample(b, "downsamplers.0.conv", h)
                }
            }
            h = middle(b, h)
            h = groupNorm(b, "conv_norm_out", h, groups: c.normGroups, eps: c.normEps).silu()
            return conv(b, "conv_out", h, 2 * c.latentChannels, kernel: 3)
        }
        if c.quantConv { h = conv(b, "quant_conv", h, 2 * c.latentChannels, kernel: 1) }
        let parts = h.chunk(2, axis: 1)                                     // 2 × [N, z, h, w]
        let logvar = parts[1].maximum(b.constant(-30)).minimum(b.constant(20))
        b.output(Naming.posteriorMeanOutput, parts[0])
        b.output(Naming.posteriorLogvarOutput, logvar)
        b.output(Naming.posteriorSampleOutput, parts[0] + (logvar * 0.5).exp() * noise)
        annotate(b, part: "encoder", levels: "down_blocks")
        return try b.build()
    }

    /// `latent [N, z, h, w]` (the VAE's own latent space) → `decoded [N, out, h·f, w·f]`.
    public func decoderGraph(batch: Int, latentHeight: Int, latentWidth: Int) throws -> Graph {
        let c = config
        guard batch > 0, latentHeight > 0, latentWidth > 0 else {
            throw IRError("VAE decoder: latent \(latentHeight)×\(latentWidth) (batch \(batch)) must be positive")
        }
        let b = GraphBuilder(name: "vae_decoder")
        var h = b.input(Naming.vaeLatentInput, TensorType(.f32, [batch, c.latentChannels, latentHeight, latentWidth]))
        if c.postQuantConv { h = conv(b, "post_quant_conv", h, c.latentChannels, kernel: 1) }
        let decoded = b.scoped("decoder") { () -> Tensor in
            let reversed = Array(c.blockOutChannels.reversed())
            var h = conv(b, "conv_in", h, reversed[0], kernel: 3)
            h = middle(b, h)
            for (index, channels) in reversed.enumerated() {
                let level = c.blockOutChannels.count - 1 - index
                h = b.scoped("up_blocks.\(index)") {
                    var h = h
                    for layer in 0...c.layersPerBlock {
                        h = resnetBlock(b, "resnets.\(layer)", h, channels, groups: c.normGroups, eps: c.normEps)
                        if c.attentionLevels.contains(level) {
                            h = spatialAttention(b, "attentions.\(layer)", h, groups: c.normGroups, eps: c.normEps)
                        }
                    }
                    return level == 0 ? h : upsample(b, "upsamplers.0.conv", h)
                }
            }
            h = groupNorm(b, "conv_norm_out", h, groups: c.normGroups, eps: c.normEps).silu()
            return conv(b, "conv_out", h, c.outChannels, kernel: 3)
        }
        b.output(Naming.vaeDecodedOutput, decoded)
        annotate(b, part: "decoder", levels: "up_blocks")
        return try b.build()
    }

    /// `mid_block`: ResNet, self-attention (when configured), ResNet, at the coarsest level's width.
    func middle(_ b: GraphBuilder, _ x: Tensor) -> Tensor {
        let c = config
        return b.scoped("mid_block") {
            var h = resnetBlock(b, "resnets.0", x, x.shape[1], groups: c.normGroups, eps: c.normEps)
            if c.midAttention { h = spatialAttention(b, "attentions.0", h, groups: c.normGroups, eps: c.normEps) }
            return resnetBlock(b, "resnets.1", h, x.shape[1], groups: c.normGroups, eps: c.normEps)
        }
    }

    /// Profile blocks: the stem, each level, the middle block and the head.
    func annotate(_ b: GraphBuilder, part: String, levels: String) {
        b.annotate(scope: "\(part).conv_in", block: "\(part).conv_in")
        for index in config.blockOutChannels.indices {
            b.annotate(scope: "\(part).\(levels).\(index)", block: "\(part).\(levels).\(index)")
        }
        b.annotate(scope: "\(part).mid_block", block: "\(part).mid_block")
        b.annotate(scope: "\(part).conv_norm_out", block: "\(part).out")
        b.annotate(scope: "\(part).conv_out", block: "\(part).out")
    }
}
