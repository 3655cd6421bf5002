import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomDistributed
import LoomExperiments
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// The `loom` command-line tool.
@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Ahead-of-time compiler and runtime for diffusion transformers with Internal Guidance.",
        subcommands: [DemoCommand.self, IRCommand.self, ParamsCommand.self, CheckGoldenCommand.self, TrainCommand.self, CompileCommand.self, ProfileCommand.self, RunCommand.self, ImportCommand.self, EncodeCommand.self, SampleCommand.self, GuidanceCostCommand.self, TrainClassifierCommand.self, EvaluateCommand.self, ExperimentCommand.self, BenchCommand.self])

    /// Parses the command line (a usage error prints the subcommand's usage, exit 64), checks the
    /// kernel-selection environment, then runs the command: a failure while it runs prints its
    /// message alone and exits 1.
    static func main() {
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            try KernelSelection.validateEnvironment()
            try Threading.validateEnvironment()
            var runnable = command
            try runnable.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch let error as CleanExit {
            exit(withError: error)
        } catch let error where isFailureWhileRunning(error) {
            FileHandle.standardError.write(Data("Error: \(message(of: error))\n".utf8))
            Foundation.exit(1)
        } catch {
            // ArgumentParser's own, e.g. the help request its `help` subcommand and `--help` throw
            // from `run()`: printed its way (help text, exit 0).
            exit(withError: error)
        }
    }

    /// Errors of a command that failed while running (as opposed to ArgumentParser's own).
    static func isFailureWhileRunning(_ error: Error) -> Bool {
        error is ValidationError || error is RuntimeError || error is DiffusionError || error is IRError
            || error is DistributedError || error is LocalizedError || error is CocoaError
    }

    /// The message of any error a command throws, without type names.
    static func message(of error: Error) -> String {
        switch error {
        case let error as ValidationError: return error.message
        case let error as RuntimeError: return error.message
        case let error as LocalizedError: return error.errorDescription ?? "\(error)"
        default: return "\(error)"
        }
    }
}
