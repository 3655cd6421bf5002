import Foundation
import LoomData
import LoomRuntime
import LoomTestSupport
import XCTest

/// A rank killed in the middle of `mpirun -np 2 loom train`: the job ends within a bounded time with
/// a message naming the rank, and the last checkpoint still loads.
extension DataParallelTrainingTests {
    func testKilledRankEndsTheJobAndTheCheckpointLoads() throws {
        guard LoomCLI.mpirun != nil else { throw XCTSkip("mpirun not found on PATH (scripts/install-deps.sh)") }
        guard FileManager.default.isExecutableFile(atPath: LoomCLI.binary) else { throw XCTSkip("no debug build of loom") }
        let latents = try writeLatents()
        let out = directory + "/killed"
        let output = directory + "/mpirun.log"
        let (process, log) = try LoomCLI.start(["train"] + Self.model + ["--latents", latents, "--steps", "100000",
                                                                        "--checkpoint-every", "2", "--out", out],
                                               ranks: 2, log: output)
        defer {
            if process.isRunning { process.terminate() }
            try? log.close()
        }
        let checkpoint = out + "/checkpoint.safetensors"
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: checkpoint), Date() < deadline, process.isRunning { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint), "no checkpoint was written")
        // The ranks are the launcher's children running loom; kill one of them outright.
        let ranks = try childPIDs(of: process.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "ranks: \(ranks)")
        let victim = try XCTUnwrap(ranks.last)
        let killed = Date()
        kill(victim, SIGKILL)
        while process.isRunning, Date().timeIntervalSince(killed) < 30 { usleep(50_000) }
        let seconds = Date().timeIntervalSince(killed)
        XCTAssertFalse(process.isRunning, "the job still runs \(seconds) s after a rank was killed")
        XCTAssertNotEqual(process.terminationStatus, 0)
        let text = try String(contentsOfFile: output, encoding: .utf8)
        XCTAssertTrue(text.contains("rank"), text)
        print(String(format: "job ended %.1f s after rank pid %d was killed", seconds, victim))
        let saved = try SafeTensors.read(path: checkpoint)
        XCTAssertNotNil(saved.tensors["train.step"], "the checkpoint loads and holds its step")
    }

    /// Process ids whose parent is `parent` (from /proc).
    func childPIDs(of parent: Int32) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }.sorted()
    }
}
