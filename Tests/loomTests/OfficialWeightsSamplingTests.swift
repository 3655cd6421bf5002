import Foundation
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import XCTest

/// From a PyTorch training checkpoint to samples: `loom import --key ema`, then `loom sample
/// --weights` with the configuration the import recorded plus what the weights do not store.
final class OfficialWeightsSamplingTests: TemporaryDirectoryTestCase {
    func testImportedWeightsSampleLikeTheModelTheyCameFrom() throws {
        let pt = RepositoryPaths.fixtures.appendingPathComponent("import/sit_ig_tiny_training.pt").path
        let weights = directory + "/sit.safetensors"
        let imported = try LoomCLI.run(["import", pt, "--key", "ema", "-o", weights])
        XCTAssertEqual(imported.status, 0, imported.output)
        let arguments = ["sample", "--weights", weights, "--sampler", "euler", "--steps", "3", "--guidance", "ig",
                         "--ig-weight", "1.5", "--per-class", "1", "--batch", "10", "--seed", "4", "--out", directory + "/out"]
        let missing = try LoomCLI.run(arguments)
        XCTAssertEqual(missing.status, 1, missing.output)
        XCTAssertTrue(missing.output.contains("--backbone"), missing.output)
        let noLayer = try LoomCLI.run(arguments + ["--backbone", "sit", "--heads", "4"])
        XCTAssertTrue(noLayer.output.contains("--ig-layer"), noLayer.output)
        let run = try LoomCLI.run(arguments + ["--backbone", "sit", "--heads", "4", "--ig-layer", "2"])
        XCTAssertEqual(run.status, 0, run.output)
        let samples = try SafeTensors.read(path: directory + "/out/samples.safetensors").tensors["samples"]!

        // A paper recipe fills the settings left at their defaults; explicit flags (--steps) win.
        let recipe = try LoomCLI.run(["sample", "--weights", weights, "--backbone", "sit", "--heads", "4", "--ig-layer", "2",
                                      "--recipe", "sit-xl-ig", "--steps", "3", "--per-class", "1", "--batch", "10",
                                      "--out", directory + "/recipe"])
        XCTAssertEqual(recipe.status, 0, recipe.output)
        XCTAssertTrue(recipe.output.contains("recipe sit-xl-ig: euler_maruyama 3 steps") && recipe.output.contains("IG w 1.4")
                      && recipe.output.contains("CFG s 1.35 on σ∈[0.0,0.7]"), recipe.output)

        // The same model from the golden file's own configuration and parameters.
        let golden = try SafeTensors.read(path: RepositoryPaths.fixtures.appendingPathComponent("sit_ig_tiny.safetensors").path)
        var parameters: [String: HostTensor] = [:]
        for (name, value) in golden.tensors { if let key = Naming.strip(Naming.goldenParameterPrefix, from: name) { parameters[key] = value } }
        let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2, hidden: 64, depth: 4,
                                heads: 4, numClasses: 10, igLayer: 2)
        let job = SamplingJob(model: model, weights: parameters, sampler: SamplerSettings(kind: .euler, steps: 3, objective: .flowRepa),
                              guidance: GuidanceSettings(mode: .ig, weight: 1.5, cfgScale: 1.5), batch: 10, seed: 4, threads: 1)
        let reference = try job.run(labels: (0..<10).map(Int64.init))
        XCTAssertEqual(samples.shape, [10, 4, 8, 8])
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(samples, reference), 1e-5)
    }
}
