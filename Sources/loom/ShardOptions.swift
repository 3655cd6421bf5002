import ArgumentParser
import Foundation
import LoomData
import LoomDistributed
import LoomRuntime
import LoomSampling

/// `loom sample --num-images N --out-dir D`: FID-scale sampling in shards, over the ranks of
/// `mpirun` when launched by it (`ShardedSampler`).
struct ShardOptions: ParsableArguments {
    @Option(help: "Sample this many images in shards (image i: label i mod classes, noise from (seed, i)) into --out-dir.")
    var numImages: Int?
    @Option(help: "Folder of the shards (samples-<first>-<end>.safetensors); a rerun keeps finished shards.")
    var outDir: String?
    @Option(help: "Images per shard.") var shardSize = 1000
    @Flag(help: "Also write every image as <out-dir>/png/<index>.png.") var png = false

    func validate() throws {
        guard let numImages else {
            if outDir != nil { throw ValidationError("--out-dir needs --num-images") }
            return
        }
        try FlagCheck.count(numImages, "--num-images", max: 1 << 31)
        try FlagCheck.count(shardSize, "--shard-size", max: 1 << 20)
        guard outDir != nil else { throw ValidationError("--num-images needs --out-dir") }
    }

    /// Samples this process's shards; under mpirun an error on one rank stops them all.
    /// With `vae`, the PNGs are the decoded RGB images (`vaeBatch` at a time) and are always written.
    func run(job: SamplingJob, description: String, vae: VAECodec? = nil, vaeBatch: Int = 4) throws {
        let sampler = try ShardedSampler(job: job, count: numImages!, shardSize: shardSize, directory: outDir!,
                                         description: description)
        guard MPICommunicator.launchedByMPIRun else {
            print("sampling \(sampler.count) images in \(sampler.shards.count) shard(s) of \(shardSize) into \(outDir!)")
            try write(sampler, rank: 0, size: 1, vae: vae, vaeBatch: vaeBatch)
            return
        }
        let mpi = try MPICommunicator()
        do {
            if mpi.isLeader { print("sampling \(sampler.count) images in \(sampler.shards.count) shard(s) over \(mpi.size) ranks into \(outDir!)") }
            try write(sampler, rank: mpi.rank, size: mpi.size, vae: vae, vaeBatch: vaeBatch)
        } catch {
            let message = (error as? DiffusionError)?.message ?? "\(error)"
            FileHandle.standardError.write(Data("Error: rank \(mpi.rank) of \(mpi.size): \(message)\n".utf8))
            mpi.abort(code: 1)
        }
        mpi.finalize()
    }

    func write(_ sampler: ShardedSampler, rank: Int, size: Int, vae: VAECodec?, vaeBatch: Int) throws {
        let done = try sampler.run(rank: rank, size: size) { print("  [rank \(rank)] " + $0); fflush(stdout) }
        guard png || vae != nil else { return }
        let folder = outDir! + "/png"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (shard, _) in done {
            let file = try SafeTensors.read(path: sampler.path(shard))
            guard let latents = file.tensors["samples"] else { continue }
            let samples = try vae.map { try $0.decode(latents, batch: vaeBatch) } ?? latents
            for (offset, index) in shard.enumerated() {
                try ImageGrid.write(samples.items(offset, 1), rows: 1, to: String(format: "%@/%08d.png", folder, index), padding: 0, scale: 1)
            }
        }
    }
}
