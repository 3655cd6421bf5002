import ArgumentParser
import Foundation
import LoomData
import LoomRuntime
import LoomSampling

/// `loom encode`: a folder of labelled images to the `--latents` format of `loom train`, through a VAE.
struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode a folder of images (one sub-folder per class, PNG/JPEG) into latent shards for `loom train --latents`.",
        discussion: """
            Each image is prepared as ADM does for ImageNet (box-halved while its short side is at least twice
            --image-size, bicubic-resized to --image-size on the short side, centre-cropped; Pillow's
            arithmetic), scaled to [-1, 1] and encoded: the posterior mean, or with --sample a posterior sample
            drawn from (--seed, image index). Latents are written in the generator's space (the VAE latent
            mapped by --scaling-factor / --latent-stats / the folder's config.json) as
            shard-NNNNNN.safetensors files holding `latents` [N, z, S/f, S/f] and `labels` [N]. A rerun with the
            same settings keeps the complete shards and writes the rest; other settings are refused.
            """)

    @Argument(help: "The image folder: ROOT/<class>/<image>.png|jpg; classes are numbered in name order.")
    var images: String
    @Option(name: .shortAndLong, help: "The latent folder to write (new, or one this command started with the same settings).")
    var output: String
    @OptionGroup var vaeOptions: VAEOptions
    @Option(help: "Side of the square images the VAE encodes.") var imageSize = 256
    @Flag(help: "Encode a posterior sample instead of the posterior mean.") var sample = false
    @Option(help: "Seed of the posterior samples (with --sample).") var seed: UInt64 = 0
    @Option(help: "Images per shard.") var shardSize = 1000
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        try vaeOptions.validate()
        guard vaeOptions.vae != nil else { throw ValidationError("loom encode needs --vae") }
        try FlagCheck.count(imageSize, "--image-size", max: 8192)
        try FlagCheck.count(shardSize, "--shard-size", max: 1_000_000)
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
        if SameFile.check(images, output) { throw ValidationError("-o \(output) is the image folder; choose another output") }
    }

    /// What a latent folder was made with; a rerun must match it to continue.
    struct Manifest: Codable, Equatable {
        var images: String
        var count: Int
        var classes: [String]
        var vae: String
        var imageSize: Int
        var sample: Bool
        var seed: UInt64
        var shardSize: Int
        var latentScale: [Float]
        var latentShift: [Float]
    }

    static let manifestName = "encode.json"

    func run() throws {
        do { try encode() } catch let error as DiffusionError { throw ValidationError(error.message) }
    }

    func encode() throws {
        let folder = try ImageFolder(root: images)
        guard let codec = try vaeOptions.codec(threads: try Threading.resolve(threads)) else { return }
        let f = codec.config.downsamplingFactor
        guard imageSize % f == 0 else { throw DiffusionError("--image-size \(imageSize) is not a multiple of the VAE's factor \(f)") }
        let manifest = Manifest(images: images, count: folder.entries.count, classes: folder.classes, vae: vaeOptions.vae!,
                                imageSize: imageSize, sample: sample, seed: seed, shardSize: shardSize,
                                latentScale: codec.config.latentScale, latentShift: codec.config.latentShift)
        try prepareOutput(manifest)
        let shards = stride(from: 0, to: folder.entries.count, by: shardSize).map { $0..<min($0 + shardSize, folder.entries.count) }
        print("encoding \(folder.entries.count) images of \(folder.classes.count) classes into \(shards.count) shard(s) in \(output)")
        let started = Date()
        var encoded = 0
        for (index, range) in shards.enumerated() {
            let path = String(format: "%@/shard-%06d.safetensors", output, index)
            if FileManager.default.fileExists(atPath: path) {
                print("  shard \(index): complete, kept")
                continue
            }
            let latents = try encodeShard(Array(folder.entries[range]), first: range.lowerBound, codec: codec)
            let labels = HostTensor(shape: [range.count], ints: folder.entries[range].map { Int64($0.label) })
            let staging = output + "/.shard-\(index).partial-\(getpid())"
            defer { unlink(staging) }
            try SafeTensors.write([("latents", latents), ("labels", labels)],
                                  metadata: ["first": "\(range.lowerBound)", "vae": vaeOptions.vae!], to: staging)
            guard rename(staging, path) == 0 else { throw DiffusionError("cannot write \(path): \(String(cString: strerror(errno)))") }
            encoded += range.count
            let seconds = Date().timeIntervalSince(started)
            print(String(format: "  shard %d: images %d…%d written (%.2f s per image)", index, range.lowerBound, range.upperBound - 1,
                         seconds / Double(max(encoded, 1))))
            fflush(stdout)
        }
        print("wrote \(output) (\(folder.entries.count) latents; `loom train --latents \(output)`)")
    }

    /// One shard's images, prepared and encoded a VAE batch at a time.
    func encodeShard(_ entries: [ImageFolder.Entry], first: Int, codec: VAECodec) throws -> HostTensor {
        let side = imageSize, plane = imageSize * imageSize
        var pixels = [Float](repeating: 0, count: entries.count * 3 * plane)  // [N, 3, S, S]
        for (i, entry) in entries.enumerated() {
            let image = ImageResampling.centerCrop(try ImageFolder.readRGB(entry.path), size: side)
            for p in 0..<plane {
                for c in 0..<3 { pixels[(i * 3 + c) * plane + p] = Float(image.pixels[p * 3 + c]) / 127.5 - 1 }
            }
        }
        let batch = HostTensor(shape: [entries.count, 3, side, side], floats: pixels)
        let f = codec.config.downsamplingFactor, z = codec.config.latentChannels
        var noise: HostTensor?
        if sample {
            let per = z * (side / f) * (side / f)
            var draws: [Float] = []
            for i in 0..<entries.count {
                var stream = RandomStream(seed: seed, stream: RandomStream.streamID("encode"), position: UInt64(first + i) << 32)
                draws += stream.normal(per)
            }
            noise = HostTensor(shape: [entries.count, z, side / f, side / f], floats: draws)
        }
        return try codec.encode(batch, noise: noise, batch: vaeOptions.vaeBatch)
    }

    /// Creates the folder with its manifest, or checks that an existing one was made with the same settings.
    func prepareOutput(_ manifest: Manifest) throws {
        let manager = FileManager.default
        let manifestPath = output + "/" + Self.manifestName
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: output, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw DiffusionError("-o \(output) is a file") }
            let contents = (try? manager.contentsOfDirectory(atPath: output)) ?? []
            if !contents.isEmpty {
                guard let data = manager.contents(atPath: manifestPath),
                      let existing = try? JSONDecoder().decode(Manifest.self, from: data) else {
                    throw DiffusionError("-o \(output) exists and is not a folder `loom encode` started: choose a new folder")
                }
                guard existing == manifest else {
                    throw DiffusionError("-o \(output) was started with other settings (\(manifestPath)): choose a new folder or the same settings")
                }
                return
            }
        }
        try manager.createDirectory(atPath: output, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: manifestPath), options: .atomic)
    }
}
