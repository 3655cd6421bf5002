import ArgumentParser

/// The `loom` command-line tool.
@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Ahead-of-time compiler and runtime for diffusion transformers with Internal Guidance.",
        subcommands: [DemoCommand.self, IRCommand.self, ParamsCommand.self, CheckGoldenCommand.self, TrainCommand.self, CompileCommand.self, ProfileCommand.self, RunCommand.self, SampleCommand.self, GuidanceCostCommand.self, TrainClassifierCommand.self, EvaluateCommand.self, ExperimentCommand.self, BenchCommand.self])
}
