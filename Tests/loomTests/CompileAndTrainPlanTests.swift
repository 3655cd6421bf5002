import Foundation
import LoomData
import LoomTestSupport
import XCTest

/// `loom compile` and `loom train --plan` end to end: every stage of the pipeline is dumpable, and a
/// precompiled plan applies run-time hyperparameters and refuses a setting it fixes.
final class CompileAndTrainPlanTests: TemporaryDirectoryTestCase {
    let model = ["sit", "--hidden", "16", "--depth", "2", "--heads", "2", "--patch", "4", "--ig-layer", "1",
                 "--batch", "4", "--channels", "1", "--classes", "10", "--input-size", "32"]

    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try LoomCLI.run(arguments)
        XCTAssertFalse(result.signaled, arguments.joined(separator: " "))
        return (result.status, result.output)
    }

    func testDumpAllShowsEveryStage() throws {
        let result = try run(["compile"] + model + ["--graph", "train", "--dump-all"])
        XCTAssertEqual(result.status, 0, result.output)
        let stages = result.output.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("// ---- after ") else { return nil }
            return String(line.dropFirst("// ---- after ".count).dropLast(" ----".count))
        }
        XCTAssertEqual(stages, ["attention-kernels", "autodiff", "simplify", "hoist", "optimizer", "fusion",
                                "simplify-after-fusion", "precision", "lower", "memory-plan"])
        let unknown = try run(["compile"] + model + ["--dump-after", "optimizer-fusion"])
        XCTAssertEqual(unknown.status, 64, unknown.output)
        XCTAssertTrue(unknown.output.contains("no such stage") && unknown.output.contains("autodiff"), unknown.output)
    }

    /// The loss of a run on a precompiled plan equals the run compiled with the same flags; a batch
    /// the plan was not compiled for is refused with both values.
    func testTrainWithAPlanAppliesOrRefusesEveryFlag() throws {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("Fashion-MNIST is not installed (scripts/install-deps.sh)")
        }
        let plan = directory + "/step.plan"
        XCTAssertEqual(try run(["compile"] + model + ["--graph", "train", "-o", plan]).status, 0)
        let flags = ["--lambda", "2", "--clip", "0.01", "--weight-decay", "0.1", "--lr", "3e-3", "--steps", "3",
                     "--log-every", "1", "--limit", "32"]
        func losses(_ extra: [String], _ folder: String) throws -> [String] {
            let result = try run(["train"] + model + flags + extra + ["--out", directory + "/" + folder])
            XCTAssertEqual(result.status, 0, result.output)
            return result.output.split(separator: "\n").filter { $0.hasPrefix("step ") }.map { String($0.prefix(40)) }
        }
        let withPlan = try losses(["--plan", plan], "a")
        XCTAssertEqual(withPlan.count, 3)
        XCTAssertEqual(withPlan, try losses([], "b"))
        var other = model
        other[other.firstIndex(of: "--batch")! + 1] = "8"
        let refused = try run(["train"] + other + ["--plan", plan, "--steps", "1", "--out", directory + "/c"])
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.output.contains("--batch 4") && refused.output.contains("asks for 8"), refused.output)
    }
}
