import Foundation
import LoomData
import LoomImport
import LoomRuntime
import LoomSampling
import LoomTestSupport
import XCTest

/// `loom encode`: a class-per-folder image set (PNG and JPEG) to latent shards that `loom train
/// --latents` reads; values equal the VAE's posterior mean of the Pillow-prepared images, scaled;
/// reruns keep complete shards and refuse other settings.
final class EncodeCommandTests: TemporaryDirectoryTestCase {
    let fixtures = RepositoryPaths.fixtures

    func testEncodeWritesTheLatentFormatAndResumes() throws {
        let images = fixtures.appendingPathComponent("images/folder").path
        let vae = fixtures.appendingPathComponent("vae/sd_tiny").path
        let out = directory + "/latents"
        let arguments = ["encode", images, "--vae", vae, "--image-size", "16", "--shard-size", "2", "-o", out]
        let run = try LoomCLI.run(arguments)
        XCTAssertEqual(run.status, 0, run.output)
        let shards = try LatentFolder.shardPaths(in: out)
        XCTAssertEqual(shards.map { ($0 as NSString).lastPathComponent }, ["shard-000000.safetensors", "shard-000001.safetensors"])
        let first = try SafeTensors.read(path: shards[0]).tensors, second = try SafeTensors.read(path: shards[1]).tensors
        XCTAssertEqual(first["latents"]?.shape, [2, 4, 2, 2])
        XCTAssertEqual(first["labels"]?.ints, [0, 0])
        XCTAssertEqual(second["labels"]?.ints, [1])

        // The first image: Pillow's preparation (the fixture), through the encoder, × 0.18215.
        let prepared = try PNGReader.read(path: fixtures.appendingPathComponent("images/a.png.crop16.png").path)
        var pixels = [Float](repeating: 0, count: 3 * 256)
        for p in 0..<256 { for c in 0..<3 { pixels[c * 256 + p] = Float(prepared.pixels[p * 3 + c]) / 127.5 - 1 } }
        let weights = try VAEWeights(path: vae)
        let codec = try VAECodec(config: weights.config, parameters: weights.tensors, threads: 1)
        let expected = try codec.encode(HostTensor(shape: [1, 3, 16, 16], floats: pixels), noise: nil, batch: 1)
        let got = Array(first["latents"]!.floats.prefix(16))
        let error = zip(got, expected.floats).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThanOrEqual(error, 1e-5 * max(expected.floats.map(abs).max() ?? 1, 1e-6), "\(got) vs \(expected.floats)")

        // A rerun keeps both shards; other settings are refused; a posterior sample differs from the mean.
        let again = try LoomCLI.run(arguments)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.output.contains("shard 1: complete, kept"), again.output)
        let other = try LoomCLI.run(arguments + ["--sample"])
        XCTAssertEqual(other.status, 1, other.output)
        XCTAssertTrue(other.output.contains("other settings"), other.output)
        let sampled = try LoomCLI.run(["encode", images, "--vae", vae, "--image-size", "16", "--sample", "--seed", "3", "-o", directory + "/s"])
        XCTAssertEqual(sampled.status, 0, sampled.output)
        let draws = try SafeTensors.read(path: directory + "/s/shard-000000.safetensors").tensors["latents"]!
        XCTAssertNotEqual(Array(draws.floats.prefix(16)), got)
    }

    func testBadInputsAreRefusedWithTheirNames() throws {
        let vae = fixtures.appendingPathComponent("vae/sd_tiny").path
        let images = fixtures.appendingPathComponent("images/folder").path
        let cases: [([String], String, Int32)] = [
            (["encode", images, "-o", directory + "/o"], "needs --vae", 64),
            (["encode", directory + "/none", "--vae", vae, "-o", directory + "/o"], "is not a directory", 1),
            (["encode", images, "--vae", vae, "--image-size", "12", "-o", directory + "/o"], "multiple of the VAE's factor 8", 1),
            (["encode", images, "--vae", vae, "-o", images], "is the image folder", 64),
            (["encode", images, "--vae", vae, "-o", fixtures.appendingPathComponent("vae").path], "not a folder `loom encode` started", 1),
        ]
        for (arguments, fragment, status) in cases {
            let run = try LoomCLI.run(arguments)
            XCTAssertEqual(run.status, status, "\(arguments): \(run.output)")
            XCTAssertTrue(run.output.contains(fragment), "\(arguments): \(run.output)")
        }
    }
}
