import ArgumentParser
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomSampling
import LoomTraining

/// `loom ir`: prints the IR of a zoo model.
struct IRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ir", abstract: "Print the IR of a zoo model.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var loss: LossOptions

    @Option(help: "forward (the network alone) or loss (forward plus the training objective).")
    var graph: GraphKind = .forward

    @Flag(help: "Fold runs of identical blocks into one (for reading; not parseable).")
    var fold = false

    func run() throws {
        let network = try DiffusionTransformer(try model.config())
        let built: Graph
        switch graph {
        case .forward: built = try network.forwardGraph(batch: model.batch)
        case .loss: built = try objectiveGraph(network, batch: model.batch, settings: loss.settings(for: try model.backbone()))
        }
        print(fold ? IRPrinter.printFolded(built) : IRPrinter.print(built), terminator: "")
    }
}
