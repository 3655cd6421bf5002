import ArgumentParser
import Foundation
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// `loom demo`: Loom's main job on an embedded default.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run Loom's main job on the embedded default (SiT-S/2 + IG head after block 4).")

    @Option(help: "Folder holding the golden fixtures to verify.")
    var fixtures = "Tests/Fixtures"

    func run() throws {
        let config = ModelConfig.preset(.sit, .S, patch: 2, igLayer: 4)
        let model = try DiffusionTransformer(config)
        let graph = try lossGraph(model, batch: 8, settings: LossSettings(objective: .flowRepa))
        print("== \(config.displayName): training graph (forward + IG objective), batch 8")
        print(GraphSummary.describe(graph))
        print("  PyTorch-style parameter count: \(grouped(graph.pytorchParameterCount))")
        let files = ["dit_tiny", "sit_ig_tiny", "lightning_ig_tiny"].map { "\(fixtures)/\($0).safetensors" }
        print("\n== golden parity (max|a − b| / max|golden| ≤ 1e-4)")
        try CheckGoldenCommand.parse(files + ["--rtol", "1e-4"]).run()
    }
}
