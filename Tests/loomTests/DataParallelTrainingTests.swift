import Foundation
import LoomData
import LoomRuntime
import LoomTestSupport
import XCTest

/// `mpirun -np 2 loom train` against the single-process run at the same global batch: the same loss
/// per step and the same weights, and a checkpoint of two ranks resumed by one continues the run.
/// Skipped (with the reason) where Open MPI's `mpirun` or the debug build of loom is missing.
final class DataParallelTrainingTests: TemporaryDirectoryTestCase {
    /// A tiny SiT with an IG head on 4×8×8 latents, global batch 8, a large learning rate so that
    /// five steps move every weight.
    static let model = ["sit", "--patch", "4", "--hidden", "32", "--depth", "2", "--heads", "2", "--ig-layer", "1",
                        "--classes", "4", "--batch", "8", "--lr", "1e-3", "--log-every", "1"]

    func testTwoRanksReproduceOneProcess() throws {
        let latents = try writeLatents()
        try train(ranks: 1, ["--latents", latents, "--steps", "5", "--out", directory + "/one"])
        try train(ranks: 2, ["--latents", latents, "--steps", "5", "--out", directory + "/two"])
        try assertSameRun(directory + "/one", directory + "/two", steps: 5)
    }

    func testOneRankResumesACheckpointOfTwo() throws {
        let latents = try writeLatents()
        try train(ranks: 1, ["--latents", latents, "--steps", "5", "--out", directory + "/one"])
        try train(ranks: 2, ["--latents", latents, "--steps", "3", "--out", directory + "/mixed"])
        try train(ranks: 1, ["--latents", latents, "--steps", "5", "--out", directory + "/mixed",
                             "--resume", directory + "/mixed/checkpoint.safetensors"])
        try assertSameRun(directory + "/one", directory + "/mixed", steps: 5)
    }

    func testBatchTheRanksCannotShareIsRefused() throws {
        let latents = try writeLatents()
        let (status, output) = try run(ranks: 2, Self.model + ["--latents", latents, "--batch", "7", "--steps", "1",
                                                               "--out", directory + "/bad"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("--batch 7") && output.contains("2 ranks"), output)
    }

    // MARK: helpers

    /// 32 random latents [4, 8, 8] with labels 0..<4 in a shard.
    func writeLatents() throws -> String {
        let folder = directory + "/latents"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var random = RandomStream(seed: 3, stream: 1)
        try LatentFolder.writeShard(latents: HostTensor(shape: [32, 4, 8, 8], floats: random.normal(32 * 4 * 8 * 8)),
                                    labels: (0..<32).map { Int64($0 % 4) }, to: folder + "/shard-000.safetensors")
        return folder
    }

    func train(ranks: Int, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, output) = try run(ranks: ranks, Self.model + arguments)
        XCTAssertEqual(status, 0, output, file: file, line: line)
    }

    /// Runs `loom <command>` in one process (ranks 1, no mpirun) or under `mpirun -np ranks`.
    func run(ranks: Int, _ arguments: [String], command: String = "train") throws -> (Int32, String) {
        let result = try LoomCLI.run([command] + arguments, ranks: ranks)
        return (result.status, result.output)
    }

    static var mpirun: String? { LoomCLI.mpirun }

    /// Loss log rows (every column) within 1e-5 relative, every checkpoint tensor within 1e-5.
    func assertSameRun(_ a: String, _ b: String, steps: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let rows = try [a, b].map { try String(contentsOfFile: $0 + "/loss.csv", encoding: .utf8).split(separator: "\n").dropFirst() }
        XCTAssertEqual(rows[0].count, steps, file: file, line: line)
        XCTAssertEqual(rows[1].count, steps, file: file, line: line)
        for (x, y) in zip(rows[0], rows[1]) {
            let u = x.split(separator: ",", omittingEmptySubsequences: false), v = y.split(separator: ",", omittingEmptySubsequences: false)
            XCTAssertEqual(u.count, v.count, file: file, line: line)
            for (p, q) in zip(u, v) {
                guard let p = Double(p), let q = Double(q) else { XCTAssertEqual(p, q, file: file, line: line); continue }
                XCTAssertLessThanOrEqual(abs(p - q), 1e-5 * max(abs(p), 1e-12), "\(x) vs \(y)", file: file, line: line)
            }
        }
        let (one, two) = (try SafeTensors.read(path: a + "/checkpoint.safetensors"), try SafeTensors.read(path: b + "/checkpoint.safetensors"))
        XCTAssertEqual(Set(one.tensors.keys), Set(two.tensors.keys), file: file, line: line)
        for (name, x) in one.tensors where x.dtype == .f32 {
            let y = two.tensors[name]!
            let worst = zip(x.floats, y.floats).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(name) differs by \(worst)", file: file, line: line)
        }
        XCTAssertGreaterThan(one.tensors.count, 0, file: file, line: line)
    }
}

extension DataParallelTrainingTests {
    /// The data a run trains on lives in its checkpoint: a resume without --latents continues on the
    /// run's own latents, and a Fashion-MNIST run refuses --latents.
    func testResumeKeepsTheRunsData() throws {
        let latents = try writeLatents()
        try train(ranks: 1, ["--latents", latents, "--steps", "2", "--out", directory + "/a"])
        let (status, output) = try run(ranks: 1, Self.model + ["--steps", "3", "--out", directory + "/a",
                                                               "--resume", directory + "/a/checkpoint.safetensors"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("resuming on the latents the run was trained on: \(latents)"), output)
        XCTAssertTrue(output.contains("step 3/3"), output)
    }
}
