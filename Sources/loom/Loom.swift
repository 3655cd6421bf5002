import ArgumentParser
import Foundation
import LoomRuntime

/// The `loom` command-line tool.
@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Ahead-of-time compiler and runtime for diffusion transformers with Internal Guidance.",
        subcommands: [DemoCommand.self, IRCommand.self, ParamsCommand.self, CheckGoldenCommand.self, TrainCommand.self, CompileCommand.self, ProfileCommand.self, RunCommand.self, SampleCommand.self, GuidanceCostCommand.self, TrainClassifierCommand.self, EvaluateCommand.self, ExperimentCommand.self, BenchCommand.self])

    /// Checks the kernel-selection environment (`LOOM_ISA`, `LOOM_GEMM`) before any command runs.
    static func main() {
        do {
            try KernelSelection.validateEnvironment()
        } catch let error as RuntimeError {
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            Foundation.exit(1)
        }
        main(nil)
    }
}
