import ArgumentParser
import Foundation
import LoomData
import LoomGraphs
import LoomImport
import LoomRuntime
import LoomSampling

/// `--vae` and its companions: the autoencoder that turns latents into RGB images (`loom sample`)
/// and images into latents (`loom encode`), and how generator latents map into its latent space.
struct VAEOptions: ParsableArguments {
    @Option(help: "KL autoencoder: a diffusers folder (config.json + diffusion_pytorch_model.safetensors, e.g. sd-vae-ft-ema) or a latent-diffusion state dict (.safetensors, or a .pt/.ckpt holding it, e.g. VA-VAE).")
    var vae: String?
    @Option(help: "With --vae: per-channel latent statistics (`mean`, `std`, C values each; safetensors or a PyTorch file such as LightningDiT's latents_stats.pt): generator latents are z·std + mean in the VAE's space.")
    var latentStats: String?
    @Option(help: "With --vae: the scaling factor (generator latents are z_vae·factor); default the folder's config.json, else 1 (and none with --latent-stats).")
    var scalingFactor: Float?
    @Option(help: "With --vae: images per VAE batch.") var vaeBatch = 4

    func validate() throws {
        try FlagCheck.count(vaeBatch, "--vae-batch", max: 4096)
        if vae == nil && (latentStats != nil || scalingFactor != nil) {
            throw ValidationError("--latent-stats and --scaling-factor apply with --vae only")
        }
        if latentStats != nil && scalingFactor != nil {
            throw ValidationError("give one of --latent-stats and --scaling-factor: both set the latent normalisation")
        }
        if let scalingFactor, !(scalingFactor.isFinite && scalingFactor != 0) {
            throw ValidationError("--scaling-factor must be a finite non-zero number, got \(scalingFactor)")
        }
    }

    /// The autoencoder compiled lazily per batch, or nil without --vae.
    func codec(threads: Int) throws -> VAECodec? {
        guard let vae else { return nil }
        let weights = try VAEWeights(path: vae)
        var config = weights.config
        if let scalingFactor {
            config.latentScale = [1 / scalingFactor]
            config.latentShift = [0]
        }
        if let latentStats {
            let (mean, std) = try Self.readStats(latentStats, channels: config.latentChannels)
            config.latentScale = std
            config.latentShift = mean
        }
        try config.validate(source: vae)
        let scale = config.latentScale.count == 1 ? String(format: "%g", config.latentScale[0]) : "per channel"
        print("vae \(vae): \(weights.layout.rawValue) layout, \(config.blockOutChannels.count) levels \(config.blockOutChannels), "
              + "z \(config.latentChannels), f\(config.downsamplingFactor); latent scale \(scale)"
              + (weights.dropped.isEmpty ? "" : "; \(weights.dropped.count) non-autoencoder key(s) ignored"))
        return try VAECodec(config: config, parameters: weights.tensors, threads: threads)
    }

    /// `mean` and `std` of a statistics file, `channels` values each (any shape, e.g. [1, C, 1, 1]).
    static func readStats(_ path: String, channels: Int) throws -> (mean: [Float], std: [Float]) {
        let tensors: [String: HostTensor]
        if path.hasSuffix(".safetensors") {
            tensors = try SafeTensors.read(path: path).tensors
        } else {
            tensors = Dictionary(try TorchCheckpoint(path: path).stateDict(key: nil), uniquingKeysWith: { a, _ in a })
        }
        func values(_ key: String) throws -> [Float] {
            guard let tensor = tensors[key], tensor.type.dtype == .f32 else {
                throw DiffusionError("--latent-stats \(path): no f32 tensor \"\(key)\" (found: \(tensors.keys.sorted().joined(separator: ", ")))")
            }
            guard tensor.floats.count == channels, tensor.floats.allSatisfy(\.isFinite) else {
                throw DiffusionError("--latent-stats \(path): \"\(key)\" has \(tensor.floats.count) values of shape \(tensor.shape); the VAE has \(channels) latent channels")
            }
            return tensor.floats
        }
        let std = try values("std")
        guard std.allSatisfy({ $0 > 0 }) else { throw DiffusionError("--latent-stats \(path): every std must be positive") }
        return (try values("mean"), std)
    }
}
