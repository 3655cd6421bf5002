import Foundation
import LoomData
import LoomImport
import LoomRuntime
import LoomTestSupport
import XCTest

/// VAE weight files that are damaged, inconsistent or hostile: each is refused with an error that
/// names the file and what is wrong, before any graph is compiled.
final class VAEWeightsTests: TemporaryDirectoryTestCase {
    let source = RepositoryPaths.fixtures.appendingPathComponent("vae/sd_tiny")

    /// A copy of the diffusers fixture with `edit` applied to its config.json (and weights).
    func variant(_ name: String, config edit: (inout [String: Any]) -> Void,
                 weights change: ((inout [(String, HostTensor)]) -> Void)? = nil) throws -> String {
        let folder = directory + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: folder + "/config.json"))
        var tensors = try SafeTensors.read(path: source.appendingPathComponent("diffusion_pytorch_model.safetensors").path).orderedTensors
        change?(&tensors)
        try SafeTensors.write(tensors, metadata: [:], to: folder + "/diffusion_pytorch_model.safetensors")
        return folder
    }

    func assertRefused(_ path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try VAEWeights(path: path), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(path), "the error names the file: \(error)", file: file, line: line)
        }
    }

    func testInconsistentConfigurationsAreRefused() throws {
        assertRefused(try variant("channels", config: { $0["block_out_channels"] = [16, 32, 32, 64] }),
                      "config.json says block_out_channels = [16, 32, 32, 64], the weights have [16, 32, 32, 32]")
        assertRefused(try variant("groups", config: { $0["norm_num_groups"] = 7 }), "multiple of norm_num_groups 7")
        assertRefused(try variant("groups0", config: { $0["norm_num_groups"] = 0 }), "norm_num_groups 0")
        assertRefused(try variant("class", config: { $0["_class_name"] = "VQModel" }), "_class_name is VQModel")
        assertRefused(try variant("act", config: { $0["act_fn"] = "gelu" }), "act_fn gelu")
        assertRefused(try variant("factor", config: { $0["scaling_factor"] = 0 }), "scaling_factor 0")
        assertRefused(try variant("stats", config: { $0["latents_mean"] = [0, 0, 0, 0] }), "come together")
        assertRefused(try variant("quant", config: { $0["use_quant_conv"] = false }), "use_quant_conv")
    }

    func testWeightsThatDoNotFitTheConfigurationAreRefused() throws {
        assertRefused(try variant("extra", config: { _ in }, weights: { $0.append(("decoder.extra.weight", HostTensor(shape: [1], floats: [0]))) }),
                      "key(s) the configuration does not use: decoder.extra.weight")
        assertRefused(try variant("missing", config: { _ in }, weights: { $0.removeAll { $0.0 == "decoder.conv_out.bias" } }),
                      "missing decoder.conv_out.bias")
        assertRefused(try variant("shape", config: { _ in }, weights: { tensors in
            let index = tensors.firstIndex { $0.0 == "decoder.mid_block.attentions.0.to_q.weight" }!
            tensors[index].1 = HostTensor(shape: [32, 16], floats: [Float](repeating: 0, count: 512))
        }), "decoder.mid_block.attentions.0.to_q.weight has shape [32, 16], the configuration needs [32, 32]")
    }

    func testDamagedFilesAreRefused() throws {
        let garbage = directory + "/garbage"
        try FileManager.default.createDirectory(atPath: garbage, withIntermediateDirectories: true)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: garbage + "/config.json"))
        try Data(contentsOf: source.appendingPathComponent("diffusion_pytorch_model.safetensors"))
            .write(to: URL(fileURLWithPath: garbage + "/diffusion_pytorch_model.safetensors"))
        assertRefused(garbage, "not a diffusers AutoencoderKL config.json")
        let empty = directory + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        assertRefused(empty, "holds config.json and diffusion_pytorch_model.safetensors")
        let cut = directory + "/cut.safetensors"
        let bytes = try Data(contentsOf: source.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try VAEWeights(path: cut)) { XCTAssertTrue("\($0)".contains("cut.safetensors"), "\($0)") }
        // A latent-diffusion key that has no place in the model.
        let stray = directory + "/stray.safetensors"
        try SafeTensors.write([("encoder.down.0.block.0.conv1.weight", HostTensor(shape: [1], floats: [0])),
                               ("encoder.down.0.wormhole.weight", HostTensor(shape: [1], floats: [0]))], metadata: [:], to: stray)
        assertRefused(stray, "encoder.down.0.wormhole.weight is not a key of latent diffusion's AutoencoderKL")
    }
}
