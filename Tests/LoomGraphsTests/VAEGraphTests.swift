import LoomGraphs
import LoomIR
import LoomRuntime
import XCTest

/// The VAE graphs' shapes and parameter keys for the released configurations and a tiny one.
final class VAEGraphTests: XCTestCase {
    func parameterShapes(_ graph: Graph) -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for node in graph.parameterNodes {
            if case .parameter(let name, _, _) = node.op { out[name] = node.type.shape }
        }
        return out
    }

    /// SD-VAE: 83.65 M parameters in all (34.16 M encoder + quant conv, 49.49 M decoder + post-quant
    /// conv), the numbers diffusers reports for `sd-vae-ft-ema`; an f8 decoder takes 32×32 latents to 256×256.
    func testSDVAEShapesAndParameterCount() throws {
        let model = try AutoencoderKL(.sdVAE)
        let decoder = try model.decoderGraph(batch: 1, latentHeight: 32, latentWidth: 32)
        let encoder = try model.encoderGraph(batch: 1, height: 256, width: 256)
        XCTAssertEqual(decoder.outputs.map { decoder.nodes[$0.node].type.shape }, [[1, 3, 256, 256]])
        XCTAssertEqual(encoder.outputs.map { encoder.nodes[$0.node].type.shape }, Array(repeating: [1, 4, 32, 32], count: 3))
        let count = { (graph: Graph) in self.parameterShapes(graph).values.reduce(0) { $0 + $1.reduce(1, *) } }
        XCTAssertEqual(count(encoder) + count(decoder), 83_653_863)
        let decoderKeys = parameterShapes(decoder)
        XCTAssertEqual(decoderKeys["decoder.up_blocks.0.resnets.2.conv2.weight"], [512, 512, 3, 3])
        XCTAssertEqual(decoderKeys["decoder.up_blocks.3.resnets.0.conv_shortcut.weight"], [128, 256, 1, 1])
        XCTAssertEqual(decoderKeys["decoder.mid_block.attentions.0.to_out.0.weight"], [512, 512])
        XCTAssertNil(decoderKeys["decoder.up_blocks.3.upsamplers.0.conv.weight"], "the finest level does not upsample")
    }

    func testInvalidConfigurationsAreRefused() {
        var config = VAEConfig.sdVAE
        config.normGroups = 48
        XCTAssertThrowsError(try AutoencoderKL(config)) { XCTAssertTrue("\($0)".contains("multiple of norm_num_groups 48"), "\($0)") }
        config = .sdVAE
        config.blockOutChannels = []
        XCTAssertThrowsError(try AutoencoderKL(config))
        XCTAssertThrowsError(try AutoencoderKL(.sdVAE).encoderGraph(batch: 1, height: 30, width: 32)) {
            XCTAssertTrue("\($0)".contains("downsampling factor 8"), "\($0)")
        }
    }
}
