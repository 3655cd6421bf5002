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

/// `loom check-golden`: recompute a golden file and compare every tensor.
struct CheckGoldenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-golden",
        abstract: "Recompute a golden safetensors file (Docs/conventions.md §5) and compare every tensor.")

    @Argument(help: "Golden files to check.")
    var files: [String]

    @Option(help: "Largest allowed max|a − b| / max|golden| per tensor (default 1e-4; \(GoldenCheck.bf16Tolerance) with --precision bf16).")
    var rtol: Double?

    @Option(help: "Operand precision of the matrix products: \(PrecisionPolicy.spelled). bf16 compares with the reference executor on bf16-rounded operands, not with the file's fp32 values.")
    var precision: PrecisionPolicy = .fp32

    @Option(help: "Threads (default: LOOM_THREADS or all cores).")
    var threads: Int?

    @Flag(help: "Run through the compiler (fusion + memory plan) instead of the reference executor.")
    var compiled = false

    @Option(help: "Also write every computed tensor to this safetensors file (one input file only).")
    var write: String?

    func run() throws {
        if write != nil && files.count != 1 { throw ValidationError("--write needs exactly one input file") }
        if let write, let input = files.first, SameFile.check(write, input) {
            throw RuntimeError("--write \(write) is the input file \(input): the output never replaces an input; choose another path")
        }
        var failures = 0
        let rtol = self.rtol ?? (precision == .bf16 ? GoldenCheck.bf16Tolerance : 1e-4)
        if compiled { print("kernels: \(KernelSelection.current)") }
        for path in files {
            let check = try GoldenCheck(path: path, rtol: rtol, threads: try Threading.resolve(threads),
                                        compiled: compiled, precision: precision)
            let against = precision == .bf16 ? ", bf16 against the bf16-rounding reference" : ""
            print("\(path)  [\(check.model.displayName)\(compiled ? ", compiled plan" : "")\(against)]")
            let width = max((check.rows.map(\.name) + check.missing).map(\.count).max() ?? 0, 8)
            for row in check.rows {
                let error = String(format: "%.3e", row.error)
                print("  \(row.passed ? "ok  " : "FAIL") \(row.name.padding(toLength: width, withPad: " ", startingAt: 0)) \(error)")
            }
            if let drift = check.fp32Drift.max(by: { $0.error < $1.error }) {
                print(String(format: "  (largest distance from the file's fp32 values: %.3e, %@)", drift.error, drift.name))
            }
            for name in check.missing { print("  FAIL \(name.padding(toLength: width, withPad: " ", startingAt: 0)) not computed") }
            if !check.passed { failures += 1 }
            if let write {
                let tensors = check.computed.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                try SafeTensors.write(tensors, metadata: ["source": path], to: write)
                print("  wrote \(tensors.count) tensors to \(write)")
            }
        }
        if failures > 0 {
            print("\(failures) of \(files.count) file(s) exceed rtol \(rtol)")
            throw ExitCode(1)
        }
        print("all \(files.count) file(s) within rtol \(rtol)")
    }
}
