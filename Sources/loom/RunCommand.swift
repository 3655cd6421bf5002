import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom run`: executes a plan file without the compiler.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a compiled plan file (no compiler involved) and report its outputs.")

    @Argument(help: "Plan file written by `loom compile`.") var planFile: String
    @Option(help: "Weights (safetensors with the plan's parameter keys); default: freshly initialised.") var weights: String?
    @Option(help: "Inputs (safetensors with the plan's input names); default: synthetic values.") var inputs: String?
    @Option(help: "Write the outputs to this safetensors file.") var output: String?
    @Option(help: "Runs (the last one's outputs are reported).") var runs = 1
    @Option(help: "Threads (default: LOOM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        try FlagCheck.count(runs, "--runs", max: 1_000_000)
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }

    func run() throws {
        let plan: Plan
        do { plan = try Plan.read(path: planFile) } catch let error as RuntimeError { throw ValidationError(error.message) }
        let executor = try PlanExecutor(plan: plan, threads: try Threading.resolve(threads))
        print("kernels: \(executor.kernels) (plan precision \(plan.precision.rawValue))")
        do {
            if let weights {
                try executor.setParameters(try SafeTensors.read(path: weights).tensors, ignoringExtra: false)
            } else {
                try executor.setParameters(SyntheticInputs.parameters(plan.graph))
            }
        } catch let error as RuntimeError {
            throw ValidationError("\(weights ?? "initial weights"): \(error.message)")
        }
        let feed = try inputs.map { try SafeTensors.read(path: $0).tensors } ?? SyntheticInputs.inputs(plan.graph)
        var results: [String: HostTensor] = [:]
        let start = Date()
        for _ in 0..<max(runs, 1) {
            do { results = try executor.run(inputs: feed) } catch let error as RuntimeError { throw ValidationError(error.message) }
        }
        let seconds = Date().timeIntervalSince(start) / Double(max(runs, 1))
        print("\(plan.graph.name): \(String(format: "%.1f ms", seconds * 1000)) per run, arena \(plan.memory.arenaBytes) bytes")
        for (name, value) in results.sorted(by: { $0.key < $1.key }) {
            let floats = value.floats
            let mean = floats.isEmpty ? 0 : floats.reduce(0, +) / Float(floats.count)
            let peak = floats.map(abs).max() ?? 0
            print("  \(name): \(value.type)  mean \(mean)  max|x| \(peak)")
        }
        if let output {
            try SafeTensors.write(results.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: ["plan": planFile], to: output)
            print("wrote \(output)")
        }
    }
}
