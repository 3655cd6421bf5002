import LoomGraphs
import LoomImport
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import XCTest

/// The VAE graphs against diffusers' `AutoencoderKL` (`scripts/make-vae-fixtures.py`: random
/// weights, every parameter re-drawn): the posterior's mean, log-variance and sample, the decoder
/// on a random latent and the reconstruction, each within 1e-4 of diffusers' output relative to
/// its largest value, on both of Loom's convolution paths. Three weight files cover both key layouts:
/// a diffusers folder (SD-VAE's topology, f8, 8 groups), a latent-diffusion `.pt` holding its state
/// dict under `state_dict` beside loss weights (f4), and a latent-diffusion safetensors file with
/// attention inside a level on a non-square image.
final class VAEGoldenTests: XCTestCase {
    static let folder = RepositoryPaths.fixtures.appendingPathComponent("vae")

    func fixture(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }

    func relativeError(_ a: HostTensor, _ b: HostTensor) -> Double {
        let scale = Double(b.floats.map(Swift.abs).max() ?? 0)
        let error = zip(a.floats, b.floats).map { Double(Swift.abs($0 - $1)) }.max() ?? 0
        return scale == 0 ? error : error / scale
    }

    func check(weights path: String, golden: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try SafeTensors.read(path: fixture(golden)).tensors
        let weights = try VAEWeights(path: fixture(path))
        let image = try XCTUnwrap(expected["image"]), latent = try XCTUnwrap(expected["latent"])
        for provider in ConvolutionProvider.allCases {
            var kernels = KernelSelection.current
            kernels.conv = provider
            let codec = try VAECodec(config: weights.config, parameters: weights.tensors, threads: 2, kernels: kernels)
            let (n, h, w) = (image.shape[0], image.shape[2], image.shape[3])
            let encoded = try codec.encoder(batch: n, height: h, width: w)
                .run(inputs: [Naming.vaeImageInput: image, Naming.vaeNoiseInput: try XCTUnwrap(expected["noise"])])
            let decoder = try codec.decoder(batch: n, latentHeight: latent.shape[2], latentWidth: latent.shape[3])
            var computed = encoded
            computed[Naming.vaeDecodedOutput] = try decoder.run(inputs: [Naming.vaeLatentInput: latent])[Naming.vaeDecodedOutput]
            computed["reconstruction"] = try decoder.run(inputs: [Naming.vaeLatentInput: encoded[Naming.posteriorMeanOutput]!])[Naming.vaeDecodedOutput]
            for name in [Naming.posteriorMeanOutput, Naming.posteriorLogvarOutput, Naming.posteriorSampleOutput,
                         Naming.vaeDecodedOutput, "reconstruction"] {
                let got = try XCTUnwrap(computed[name], name), want = try XCTUnwrap(expected[name], name)
                XCTAssertEqual(got.shape, want.shape, "\(golden) \(name)", file: file, line: line)
                let error = relativeError(got, want)
                XCTAssertLessThanOrEqual(error, 1e-4, "\(golden) \(name) (conv \(provider)): \(error)", file: file, line: line)
            }
        }
    }

    func testDiffusersFolderMatchesDiffusers() throws {
        let weights = try VAEWeights(path: fixture("sd_tiny"))
        XCTAssertEqual(weights.layout, .diffusers)
        XCTAssertEqual(weights.config.blockOutChannels, [16, 32, 32, 32])
        XCTAssertEqual(weights.config.normGroups, 8)
        XCTAssertEqual(weights.config.latentScale, [1 / 0.18215])
        try check(weights: "sd_tiny", golden: "sd_tiny.golden.safetensors")
    }

    func testLatentDiffusionCheckpointMatchesDiffusers() throws {
        let weights = try VAEWeights(path: fixture("va_tiny/vavae_tiny.pt"))
        XCTAssertEqual(weights.layout, .latentDiffusion)
        XCTAssertEqual(weights.config.blockOutChannels, [32, 64, 32])
        // VA-VAE's checkpoint also holds its training losses and the vision foundation model it aligns to.
        XCTAssertTrue(weights.dropped.contains("loss.discriminator.main.0.weight"), "\(weights.dropped)")
        XCTAssertTrue(weights.dropped.contains("foundation_model.model.cls_token"), "\(weights.dropped)")
        XCTAssertFalse(weights.dropped.contains(where: VAEKeyLayout.isAutoencoderKey), "\(weights.dropped)")
        try check(weights: "va_tiny/vavae_tiny.pt", golden: "va_tiny.golden.safetensors")
        try check(weights: "va_tiny/vavae_tiny.safetensors", golden: "va_tiny.golden.safetensors")
    }

    func testAttentionInsideALevelMatchesDiffusers() throws {
        let weights = try VAEWeights(path: fixture("va_tiny_attn/vavae_tiny.safetensors"))
        XCTAssertEqual(weights.config.attentionLevels, [1])
        try check(weights: "va_tiny_attn/vavae_tiny.safetensors", golden: "va_tiny_attn.golden.safetensors")
    }
}
