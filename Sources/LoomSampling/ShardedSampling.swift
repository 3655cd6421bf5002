import Foundation
import LoomData
import LoomIR
import LoomRuntime

/// FID-scale sampling in shards: images `0..<count` split into shards of `shardSize`, shard k
/// holding images `[k·shardSize, …)`. Image i's label and noise depend only on (seed, i) — the
/// label is `i mod classes` and the noise that of sample index i (`SamplerLoop`) — so any number of
/// processes and any batch size give the same image i. Process `rank` of `size` samples shards
/// `rank, rank + size, …`. Every shard is written atomically as
/// `samples-<first>-<end>.safetensors` (`samples` f32 [n, C, H, W], `labels` i64 [n]), with the
/// run's description in its metadata; a rerun keeps every shard whose description matches, so an
/// interrupted run resumes.
public struct ShardedSampler {
    public var job: SamplingJob
    public var count: Int
    public var shardSize: Int
    public var directory: String
    /// What the run is (model, weights, sampler, guidance, seed); a shard is kept only when equal.
    public var description: String

    /// Metadata key of a shard's run description.
    public static let descriptionKey = "loom.sampling.run"

    public init(job: SamplingJob, count: Int, shardSize: Int, directory: String, description: String) throws {
        guard count > 0, count <= SizeLimits.maxElements else { throw DiffusionError("--num-images must be positive, got \(count)") }
        guard shardSize > 0 else { throw DiffusionError("--shard-size must be positive, got \(shardSize)") }
        (self.job, self.count, self.shardSize, self.directory, self.description) = (job, count, shardSize, directory, description)
    }

    /// Image ranges of every shard.
    public var shards: [Range<Int>] {
        stride(from: 0, to: count, by: shardSize).map { $0..<min($0 + shardSize, count) }
    }

    /// The label of image `i`.
    public func label(_ i: Int) -> Int64 { Int64(i % job.model.numClasses) }

    public func path(_ shard: Range<Int>) -> String {
        String(format: "%@/samples-%08d-%08d.safetensors", directory, shard.lowerBound, shard.upperBound)
    }

    /// Whether `shard` is on disk, complete and from this run.
    public func isFinished(_ shard: Range<Int>) -> Bool {
        guard let file = try? SafeTensors.read(path: path(shard)),
              file.metadata[Self.descriptionKey] == description,
              let samples = file.tensors["samples"], let labels = file.tensors["labels"] else { return false }
        return samples.shape.first == shard.count && labels.ints == shard.map(label)
    }

    /// Samples the shards of process `rank` of `size`; returns (shard, whether it was computed now).
    @discardableResult
    public func run(rank: Int = 0, size: Int = 1, log: (String) -> Void = { _ in }) throws -> [(Range<Int>, Bool)] {
        guard size > 0, rank >= 0, rank < size else { throw DiffusionError("sharded sampling: rank \(rank) of \(size)") }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var done: [(Range<Int>, Bool)] = []
        let mine = shards.enumerated().filter { $0.offset % size == rank }.map(\.element)
        for (index, shard) in mine.enumerated() {
            if isFinished(shard) {
                log("shard \(shard.lowerBound)..<\(shard.upperBound): finished before, kept")
                done.append((shard, false))
                continue
            }
            let labels = shard.map(label)
            let started = Date()
            let samples = try job.run(labels: labels, firstSample: shard.lowerBound)
            try SafeTensors.write([("samples", samples), ("labels", HostTensor(shape: [labels.count], ints: labels))],
                                  metadata: [Self.descriptionKey: description], to: path(shard))
            log(String(format: "shard %d..<%d (%d of %d on rank %d): %.1f s", shard.lowerBound, shard.upperBound,
                       index + 1, mine.count, rank, Date().timeIntervalSince(started)))
            done.append((shard, true))
        }
        return done
    }

    /// All shards of a folder, in image order: samples [N, C, H, W] and labels [N]. Refuses gaps,
    /// overlaps and shards of different runs.
    public static func load(directory: String) throws -> (samples: HostTensor, labels: [Int64]) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw DiffusionError("--samples-dir \(directory): cannot list it (\(error.localizedDescription))")
        }
        var shards: [(range: Range<Int>, name: String)] = []
        for name in names where name.hasPrefix("samples-") && name.hasSuffix(".safetensors") {
            let parts = name.dropFirst("samples-".count).dropLast(".safetensors".count).split(separator: "-")
            guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a < b else { continue }
            shards.append((a..<b, name))
        }
        shards.sort { $0.range.lowerBound < $1.range.lowerBound }
        guard !shards.isEmpty else { throw DiffusionError("--samples-dir \(directory): no samples-<first>-<end>.safetensors shards") }
        var floats: [Float] = [], labels: [Int64] = []
        var sampleShape: [Int]?, run: String?, next = 0
        for shard in shards {
            guard shard.range.lowerBound == next else {
                throw DiffusionError("--samples-dir \(directory): images \(next)..<\(shard.range.lowerBound) are missing (or shards overlap at \(shard.name))")
            }
            let file = try SafeTensors.read(path: directory + "/" + shard.name)
            guard let samples = file.tensors["samples"], samples.dtype == .f32, samples.shape.first == shard.range.count,
                  let l = file.tensors["labels"], l.shape == [shard.range.count] else {
                throw DiffusionError("\(directory)/\(shard.name): expected samples f32 [\(shard.range.count), …] and labels [\(shard.range.count)]")
            }
            if let sampleShape, sampleShape != Array(samples.shape.dropFirst()) {
                throw DiffusionError("\(directory)/\(shard.name): images of shape \(samples.shape.dropFirst()) differ from the other shards' \(sampleShape)")
            }
            if let run, run != file.metadata[descriptionKey] {
                throw DiffusionError("\(directory)/\(shard.name) comes from another sampling run than the shards before it")
            }
            sampleShape = Array(samples.shape.dropFirst())
            run = file.metadata[descriptionKey]
            try MachineMemory.check((floats.count + samples.floats.count) * 4, what: "the samples of \(directory)")
            floats += samples.floats
            labels += l.ints
            next = shard.range.upperBound
        }
        return (HostTensor(shape: [labels.count] + sampleShape!, floats: floats), labels)
    }
}
