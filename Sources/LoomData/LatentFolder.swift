import Foundation
import LoomIR
import LoomRuntime

/// A folder of pre-encoded latents stored as safetensors shards.
///
/// Every `*.safetensors` file in the folder except `stats.safetensors` is a shard (read in
/// name order; hidden files are ignored) holding `latents` (f32 [N, C, H, W]) and `labels`
/// (i64 or i32 [N]). An optional `stats.safetensors` holds per-channel `mean` and `std` (f32 [C]);
/// when present, loading normalises every latent channel by (x − mean) / std.
public enum LatentFolder {
    /// The name of the optional per-channel statistics file.
    public static let statsFileName = "stats.safetensors"

    /// Per-channel normalisation statistics.
    public struct Stats: Sendable, Equatable {
        public var mean: [Float]
        public var std: [Float]

        public init(mean: [Float], std: [Float]) {
            self.mean = mean
            self.std = std
        }
    }

    /// The shard paths in `path`, sorted by file name. Throws when the folder is missing or has no shard.
    public static func shardPaths(in path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DiffusionError("latent folder '\(path)' not found")
        }
        guard isDirectory.boolValue else {
            throw DiffusionError("latent folder '\(path)' is a file, not a directory")
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch {
            throw DiffusionError("latent folder '\(path)' is unreadable: \(error.localizedDescription)")
        }
        let shards = entries.filter { $0.hasSuffix(".safetensors") && $0 != statsFileName && !$0.hasPrefix(".") }
        guard !shards.isEmpty else {
            let listing = describeListing(entries)
            throw DiffusionError("latent folder '\(path)' has no *.safetensors shards (besides \(statsFileName)); \(listing)")
        }
        return shards.map { joinPath(path, $0) }
    }

    /// Reads `stats.safetensors` from `path` if it exists and checks it against `channels`:
    /// `mean` and `std` must be f32 [C] and every std finite and > 0.
    public static func readStats(in path: String, channels: Int) throws -> Stats? {
        let statsPath = joinPath(path, statsFileName)
        guard FileManager.default.fileExists(atPath: statsPath) else { return nil }
        let file = try wrap { try SafeTensors.read(path: statsPath) }
        var result: [String: [Float]] = [:]
        for key in ["mean", "std"] {
            guard let tensor = file.tensors[key] else {
                throw DiffusionError("latent stats file '\(statsPath)': missing tensor '\(key)' (found keys: "
                                     + "\(file.tensors.keys.sorted().joined(separator: ", ")))")
            }
            guard tensor.dtype == .f32, tensor.elementCount == channels, tensor.shape.count == 1 else {
                throw DiffusionError("latent stats file '\(statsPath)': '\(key)' must be f32 [\(channels)] (one value per "
                                     + "latent channel), found \(tensor.dtype.rawValue)\(describeShape(tensor.shape))")
            }
            result[key] = tensor.floats
        }
        let std = result["std"]!
        if let channel = std.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw DiffusionError("latent stats file '\(statsPath)': std[\(channel)] = \(std[channel]) must be finite and > 0")
        }
        if let channel = result["mean"]!.firstIndex(where: { !$0.isFinite }) {
            throw DiffusionError("latent stats file '\(statsPath)': mean[\(channel)] = \(result["mean"]![channel]) is not finite")
        }
        return Stats(mean: result["mean"]!, std: std)
    }

    /// Loads every shard into one `Dataset`, normalised by the stats file when there is one
    /// (and `normalize` is true). `numClasses` defaults to 1 + the largest label.
    public static func load(path: String, numClasses: Int? = nil, normalize: Bool = true) throws -> Dataset {
        var sampleShape: [Int]? = nil
        var firstShard = ""
        var floats: [Float] = []
        var labels: [Int64] = []
        for shard in try shardPaths(in: path) {
            let file = try wrap { try SafeTensors.read(path: shard) }
            func tensor(_ key: String) throws -> HostTensor {
                guard let tensor = file.tensors[key] else {
                    throw DiffusionError("latent shard '\(shard)': missing tensor '\(key)' (found keys: "
                                         + "\(file.tensors.keys.sorted().joined(separator: ", ")))")
                }
                return tensor
            }
            let latents = try tensor("latents")
            guard latents.dtype == .f32, latents.shape.count == 4 else {
                throw DiffusionError("latent shard '\(shard)': 'latents' must be f32 [N, C, H, W], found "
                                     + "\(latents.dtype.rawValue)\(describeShape(latents.shape))")
            }
            let shape = Array(latents.shape.dropFirst())
            if let expected = sampleShape {
                guard shape == expected else {
                    throw DiffusionError("latent shard '\(shard)': 'latents' has shape \(describeShape(latents.shape)), "
                                         + "samples of shape \(describeShape(shape)) but shard '\(firstShard)' has "
                                         + "samples of shape \(describeShape(expected))")
                }
            } else {
                sampleShape = shape
                firstShard = shard
            }
            let shardLabels = try tensor("labels")
            guard shardLabels.dtype != .f32, shardLabels.shape.count == 1 else {
                throw DiffusionError("latent shard '\(shard)': 'labels' must be i64 or i32 [N], found "
                                     + "\(shardLabels.dtype.rawValue)\(describeShape(shardLabels.shape))")
            }
            guard shardLabels.shape[0] == latents.shape[0] else {
                throw DiffusionError("latent shard '\(shard)': \(latents.shape[0]) latents but \(shardLabels.shape[0]) labels")
            }
            if let index = shardLabels.ints.firstIndex(where: { $0 < 0 }) {
                throw DiffusionError("latent shard '\(shard)': label \(shardLabels.ints[index]) of sample \(index) is negative")
            }
            floats.append(contentsOf: latents.floats)
            labels.append(contentsOf: shardLabels.ints)
        }
        let shape = sampleShape!
        if normalize, let stats = try readStats(in: path, channels: shape[0]) {
            apply(stats, to: &floats, channels: shape[0], plane: shape[1] * shape[2])
        }
        let classes = numClasses ?? Int(1 + (labels.max() ?? 0))
        return try Dataset(images: HostTensor(shape: [labels.count] + shape, floats: floats), labels: labels,
                           numClasses: classes, source: path)
    }

    /// Writes one shard (`latents` f32 [N, C, H, W], `labels` i64 [N]) to `path`.
    public static func writeShard(latents: HostTensor, labels: [Int64], to path: String) throws {
        guard latents.dtype == .f32, latents.shape.count == 4, latents.shape[0] == labels.count else {
            throw DiffusionError("latent shard '\(path)': need f32 [N, C, H, W] latents and N labels, got "
                                 + "\(latents.dtype.rawValue)\(describeShape(latents.shape)) and \(labels.count) labels")
        }
        try wrap {
            try SafeTensors.write([("latents", latents), ("labels", HostTensor(shape: [labels.count], ints: labels))],
                                  metadata: [:], to: path)
        }
    }

    /// Writes `stats.safetensors` (f32 `mean` and `std`, [C]) into the folder `path`.
    public static func writeStats(_ stats: Stats, in path: String) throws {
        let statsPath = joinPath(path, statsFileName)
        guard stats.mean.count == stats.std.count else {
            throw DiffusionError("latent stats file '\(statsPath)': \(stats.mean.count) means but \(stats.std.count) stds")
        }
        try wrap {
            try SafeTensors.write([("mean", HostTensor(shape: [stats.mean.count], floats: stats.mean)),
                                   ("std", HostTensor(shape: [stats.std.count], floats: stats.std))],
                                  metadata: [:], to: statsPath)
        }
    }

    /// (x − mean[c]) / std[c] over [N, C, plane] data, in place.
    static func apply(_ stats: Stats, to values: inout [Float], channels: Int, plane: Int) {
        guard plane > 0, channels > 0 else { return }
        let samples = values.count / (channels * plane)
        values.withUnsafeMutableBufferPointer { buffer in
            for n in 0..<samples {
                for c in 0..<channels {
                    let mean = stats.mean[c], std = stats.std[c]
                    let base = buffer.baseAddress! + (n * channels + c) * plane
                    for i in 0..<plane { base[i] = (base[i] - mean) / std }
                }
            }
        }
    }

    /// Rethrows safetensors errors as `DiffusionError`s (their text already names file and key).
    private static func wrap<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SafeTensorsError {
            throw DiffusionError(error.description)
        }
    }

    private static func joinPath(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
