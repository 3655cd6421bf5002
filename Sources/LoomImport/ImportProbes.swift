import Foundation
import LoomGraphs
import LoomIR
import LoomRuntime

/// The fuzzing entry of the importer (`Tests/Fuzz`, target `FuzzTorchCheckpoint`): any bytes, written
/// to a temporary `.pt` file and imported whole and under the usual training-checkpoint keys, must end
/// in a value or an error, never a trap. (Through a file, as `loom import` reads: ZIPFoundation's
/// memory-backed reader traps on some damaged archives.)
public enum ImportProbes {
    public static func torchCheckpoint(_ bytes: [UInt8]) {
        let path = FileManager.default.temporaryDirectory.path + "/loom-probe-\(getpid()).pt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return }
        guard let checkpoint = try? TorchCheckpoint(path: path) else { return }
        _ = checkpoint.report()
        for key in [nil, "ema", "model"] { _ = try? checkpoint.stateDict(key: key) }
    }

    /// `--vae` over arbitrary bytes: as a latent-diffusion or diffusers state dict (`.safetensors`),
    /// and as the `config.json` of a diffusers folder beside valid weights of a one-level VAE.
    public static func vaeWeights(_ bytes: [UInt8]) {
        let folder = FileManager.default.temporaryDirectory.path + "/loom-probe-vae-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)) != nil else { return }
        let file = folder + "/weights.safetensors"
        if FileManager.default.createFile(atPath: file, contents: Data(bytes)) { _ = try? VAEWeights(path: file) }
        guard let weights = smallestVAE,
              (try? SafeTensors.write(weights, metadata: [:], to: folder + "/diffusion_pytorch_model.safetensors")) != nil,
              FileManager.default.createFile(atPath: folder + "/config.json", contents: Data(bytes)) else { return }
        _ = try? VAEWeights(path: folder)
    }

    /// Zero weights of a one-level, 8-channel VAE (diffusers keys).
    static let smallestVAE: [(String, HostTensor)]? = {
        var config = VAEConfig(latentChannels: 4, blockOutChannels: [8], layersPerBlock: 1)
        config.normGroups = 8
        guard let model = try? AutoencoderKL(config),
              let encoder = try? model.encoderGraph(batch: 1, height: 1, width: 1),
              let decoder = try? model.decoderGraph(batch: 1, latentHeight: 1, latentWidth: 1) else { return nil }
        var out: [(String, HostTensor)] = []
        for node in encoder.parameterNodes + decoder.parameterNodes {
            if case .parameter(let name, _, _) = node.op { out.append((name, HostTensor(zeros: node.type))) }
        }
        return out
    }()
}
