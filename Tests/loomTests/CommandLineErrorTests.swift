import Foundation
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// The command-line reproducers of crashes: each ends with exit 1 (a failure while running) or 64
/// (a usage error), a message naming the flag or value, and never a signal.
final class CommandLineErrorTests: XCTestCase {
    static let root = RepositoryPaths.root

    func loom(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, signaled: Bool, output: String) {
        try LoomCLI.run(arguments, environment: environment)
    }

    func testReproducersEndWithAClearError() throws {
        let cases: [([String], [String: String], Int32, String)] = [
            (["train", "sit", "--log-every", "0"], [:], 64, "--log-every 0"),
            (["train", "sit", "--clip", "nan"], [:], 64, "--clip nan"),
            (["train", "sit", "--ema-decay", "nan"], [:], 64, "--ema-decay nan"),
            (["train", "sit", "--threads", "0"], [:], 64, "--threads 0"),
            (["train-classifier", "--shift", "33"], [:], 64, "--shift 33"),
            (["sample", "--checkpoint", "x", "--steps", "9223372036854775807"], [:], 64, "--steps"),
            (["sample", "--checkpoint", "x", "--per-class", "100000000000"], [:], 64, "--per-class"),
            (["sample", "--checkpoint", "x", "--ddim-eta", "-0.5"], [:], 64, "--ddim-eta"),
            (["sample", "--checkpoint", "x", "--sampler", "euler", "--heun-last-step", "heun"], [:], 64, "--heun-last-step"),
            (["evaluate", "--samples", "a", "--classifier", "b", "--batch", "1099511627776"], [:], 64, "--batch"),
            (["params", "sit", "--hidden", "4611686018427387904"], [:], 1, "hidden 4611686018427387904"),
            (["params", "sit", "--input-size", "2147483648"], [:], 1, "input size 2147483648"),
            (["compile", "sit", "--memory-budget", "9000000000G"], [:], 1, "--memory-budget"),
            (["compile", "sit", "--batch", "1099511627776"], [:], 1, "2^40"),
            (["bench", "train-s2-b8", "--threads", "9223372036854775807"], [:], 64, "--threads"),
            (["guidance-cost", "sit", "--hidden", "32", "--depth", "1", "--heads", "2", "--repeats", "0"], [:], 64, "--repeats 0"),
            (["run", "missing.plan", "--runs", "0"], [:], 64, "--runs 0"),
            (["demo", "--steps", "0"], [:], 64, "--steps 0"),
            (["experiment", "x.json", "--status", "--seeds", "1"], [:], 64, "--status reports on the whole study"),
            (["experiment", "x.json", "--seeds", "0,one"], [:], 64, "--seeds: 'one' is not a seed"),
            (["experiment", "x.json", "--page", "Docs/results.md"], [:], 64, "--page is updated by --report only"),
            (["experiment", "x.json", "--report", "--variants", "vanilla"], [:], 64, "--report rewrites the whole study's results.md"),
            (["experiment", Self.root.appendingPathComponent("Benchmarks/study/tiny-study.json").path, "--seeds", ",,"], [:], 64, "--seeds ',,' names nothing"),
            (["experiment", Self.root.appendingPathComponent("Benchmarks/study/tiny-study.json").path, "--variants", " , "], [:], 64, "--variants ' , ' names nothing"),
            (["params", "sit"], ["LOOM_THREADS": "abc"], 1, "LOOM_THREADS=abc"),
            (["params", "sit"], ["LOOM_ISA": "sse"], 1, "LOOM_ISA=sse"),
        ]
        for (arguments, environment, status, message) in cases {
            let result = try loom(arguments, environment: environment)
            let label = (environment.map { "\($0.key)=\($0.value) " }.joined()) + arguments.joined(separator: " ")
            XCTAssertFalse(result.signaled, "\(label): killed by a signal\n\(result.output)")
            XCTAssertEqual(result.status, status, "\(label)\n\(result.output)")
            XCTAssertTrue(result.output.contains(message), "\(label)\n\(result.output)")
            if status == 1 { XCTAssertFalse(result.output.contains("Usage:"), "\(label): a runtime failure prints usage") }
        }
    }

    /// Outputs never replace inputs, and a fresh run never replaces a checkpoint it was not told to.
    func testNothingIsOverwrittenUnasked() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-overwrite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let golden = directory.appendingPathComponent("golden.safetensors").path
        try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("Tests/Fixtures/dit_tiny.safetensors").path,
                                         toPath: golden)
        let before = try Data(contentsOf: URL(fileURLWithPath: golden))
        let link = directory.appendingPathComponent("same.safetensors").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: golden)
        for target in [golden, link] {
            let result = try loom(["check-golden", golden, "--write", target])
            XCTAssertEqual(result.status, 1, result.output)
            XCTAssertTrue(result.output.contains("never replaces an input"), result.output)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: golden)), before)

        let run = directory.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let checkpoint = run.appendingPathComponent("checkpoint.safetensors").path
        try Data("not really a checkpoint".utf8).write(to: URL(fileURLWithPath: checkpoint))
        let result = try loom(["train", "sit", "--steps", "1", "--out", run.path])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("--overwrite"), result.output)
        XCTAssertEqual(try String(contentsOfFile: checkpoint, encoding: .utf8), "not really a checkpoint")
    }

    /// `--resume` refuses a checkpoint of another backbone or objective instead of training it.
    func testResumeRefusesAnotherModel() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = directory.appendingPathComponent("sit").path
        let first = try loom(["train", "sit", "--patch", "8", "--hidden", "32", "--depth", "1", "--heads", "2", "--batch", "4",
                              "--steps", "1", "--limit", "16", "--out", run])
        guard first.status == 0 else { throw XCTSkip("no training data here: \(first.output)") }
        let checkpoint = run + "/checkpoint.safetensors"
        let dit = try loom(["train", "dit", "--resume", checkpoint, "--out", run])
        XCTAssertEqual(dit.status, 1, dit.output)
        XCTAssertTrue(dit.output.contains("is a sit checkpoint"), dit.output)
        let objective = try loom(["train", "sit", "--objective", "flow_sit", "--resume", checkpoint, "--out", run])
        XCTAssertEqual(objective.status, 1, objective.output)
        XCTAssertTrue(objective.output.contains("--objective flow_sit differs"), objective.output)

        // Sampling: an empty label list is named as such; a good run writes both outputs.
        let samples = directory.appendingPathComponent("samples").path
        let empty = try loom(["sample", "--checkpoint", checkpoint, "--labels", "", "--steps", "2", "--out", samples])
        XCTAssertEqual(empty.status, 1, empty.output)
        XCTAssertTrue(empty.output.contains("--labels: no labels given"), empty.output)
        let eta = try loom(["sample", "--checkpoint", checkpoint, "--labels", "1", "--steps", "2", "--ddim-eta", "1", "--out", samples])
        XCTAssertEqual(eta.status, 1, eta.output)
        XCTAssertTrue(eta.output.contains("--ddim-eta applies to --sampler ddim only"), eta.output)
        let good = try loom(["sample", "--checkpoint", checkpoint, "--labels", "1,2", "--steps", "2", "--guidance", "cfg", "--out", samples])
        XCTAssertEqual(good.status, 0, good.output)
        let written = try FileManager.default.contentsOfDirectory(atPath: samples).sorted()
        XCTAssertEqual(written, ["grid.png", "samples.safetensors"], "no staging files may remain")
    }
}

extension CommandLineErrorTests {
    /// Help is printed, not reported as an error.
    func testHelpIsPrinted() throws {
        for (arguments, fragment) in [(["--help"], "SUBCOMMANDS"), (["sample", "--help"], "--num-images"),
                                      (["help", "train"], "--accumulate"), (["import", "--help"], "--key")] {
            let result = try loom(arguments)
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.output)")
            XCTAssertTrue(result.output.contains(fragment), "\(arguments): \(result.output)")
            XCTAssertFalse(result.output.contains("Error:"), "\(arguments): \(result.output)")
        }
    }
}
