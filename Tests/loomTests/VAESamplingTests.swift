import Foundation
import LoomData
import LoomImport
import LoomRuntime
import LoomSampling
import LoomTestSupport
import XCTest

/// From official weights to RGB pictures: `loom import` of a checkpoint written by the official
/// SiT+IG module code, then `loom sample --weights … --vae …` through a diffusers-layout VAE,
/// writing the RGB grid and one PNG per image; then `loom encode` of those PNGs.
final class VAESamplingTests: TemporaryDirectoryTestCase {
    let fixtures = RepositoryPaths.fixtures

    func testSampleDecodesThroughTheVAEIntoAnRGBGrid() throws {
        let weights = directory + "/sit.safetensors"
        let imported = try LoomCLI.run(["import", fixtures.appendingPathComponent("import/official_sit_ig.pt").path, "-o", weights])
        XCTAssertEqual(imported.status, 0, imported.output)
        let vae = fixtures.appendingPathComponent("vae/sd_tiny").path
        let out = directory + "/out"
        let run = try LoomCLI.run(["sample", "--weights", weights, "--backbone", "sit", "--heads", "3", "--ig-layer", "2",
                                   "--sampler", "euler", "--steps", "2", "--guidance", "ig+cfg", "--labels", "0,3,5,7",
                                   "--vae", vae, "--vae-batch", "3", "--seed", "1", "--out", out])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("decoded 4 images with the VAE"), run.output)

        // The grid: 2 × 2 cells of 64×64 RGB (8×8 latents, f8), 2 pixels of padding.
        let grid = try PNGReader.read(path: out + "/grid.png")
        XCTAssertEqual([grid.width, grid.height, grid.channels], [2 * 64 + 3 * 2, 2 * 64 + 3 * 2, 3])
        let names = try FileManager.default.contentsOfDirectory(atPath: out + "/images").sorted()
        XCTAssertEqual(names, ["000000-class0.png", "000001-class3.png", "000002-class5.png", "000003-class7.png"])

        // Each PNG is the decoder's output for that sample's latent (scaled by 1/0.18215 first).
        let latents = try SafeTensors.read(path: out + "/samples.safetensors").tensors["samples"]!
        let loaded = try VAEWeights(path: vae)
        let codec = try VAECodec(config: loaded.config, parameters: loaded.tensors, threads: 1)
        let images = try codec.decode(latents, batch: 4)
        XCTAssertEqual(images.shape, [4, 3, 64, 64])
        let last = HostTensor(shape: [1, 3, 64, 64], floats: Array(images.floats[(3 * 3 * 64 * 64)...]))
        let expected = try ImageGrid.render(last, rows: 1, padding: 0, scale: 1)
        let written = try PNGReader.read(path: out + "/images/000003-class7.png")
        XCTAssertEqual(written.pixels.count, expected.pixels.count)
        var largest = 0
        for (a, b) in zip(expected.pixels, written.pixels) { largest = max(largest, abs(Int(a) - Int(b))) }
        XCTAssertLessThanOrEqual(largest, 1, "the PNG is the decoded image (to one level of rounding)")
    }

    func testBadVAEInputsAreRefusedWithTheirNames() throws {
        let weights = directory + "/sit.safetensors"
        XCTAssertEqual(try LoomCLI.run(["import", fixtures.appendingPathComponent("import/official_sit_ig.pt").path, "-o", weights]).status, 0)
        let base = ["sample", "--weights", weights, "--backbone", "sit", "--heads", "3", "--ig-layer", "2", "--steps", "1",
                    "--labels", "0", "--out", directory + "/o"]
        // Bad files exit 1; flag combinations that cannot work are usage errors (exit 64).
        let cases: [([String], String, Int32)] = [
            (["--vae", directory + "/missing"], "no such file or folder", 1),
            (["--vae", fixtures.appendingPathComponent("vae/va_tiny/vavae_tiny.pt").path], "has 8 latent channels", 1),
            (["--vae", fixtures.appendingPathComponent("import/state_dict.pt").path], "no autoencoder keys", 1),
            (["--latent-stats", "x.safetensors"], "apply with --vae only", 64),
            (["--vae", fixtures.appendingPathComponent("vae/sd_tiny").path, "--scaling-factor", "0"], "--scaling-factor", 64),
        ]
        for (extra, fragment, status) in cases {
            let run = try LoomCLI.run(base + extra)
            XCTAssertEqual(run.status, status, "\(extra): \(run.output)")
            XCTAssertTrue(run.output.contains(fragment), "\(extra): \(run.output)")
        }
    }
}
