import Foundation
import LoomData
import LoomRuntime
import LoomSampling
import LoomTestSupport
import XCTest

/// `[mpirun -np 2] loom sample --num-images N --out-dir D`: two ranks write the same images as one
/// process, bit for bit per index, and a rerun keeps every finished shard.
extension DataParallelTrainingTests {
    func testShardedSamplingOverTwoRanksEqualsOneProcess() throws {
        let latents = try writeLatents()
        try train(ranks: 1, ["--latents", latents, "--steps", "2", "--out", directory + "/model"])
        let sample = ["--checkpoint", directory + "/model/checkpoint.safetensors", "--num-images", "10", "--shard-size", "3",
                      "--batch", "3", "--steps", "3", "--sampler", "euler_maruyama", "--guidance", "ig+cfg", "--seed", "7"]
        let (s1, o1) = try run(ranks: 1, sample + ["--out-dir", directory + "/one"], command: "sample")
        XCTAssertEqual(s1, 0, o1)
        let (s2, o2) = try run(ranks: 2, sample + ["--out-dir", directory + "/two"], command: "sample")
        XCTAssertEqual(s2, 0, o2)
        XCTAssertTrue(o2.contains("[rank 1]"), o2)
        let one = try ShardedSampler.load(directory: directory + "/one")
        let two = try ShardedSampler.load(directory: directory + "/two")
        XCTAssertEqual(one.samples.shape, [10, 4, 8, 8])
        XCTAssertEqual(one.labels, two.labels)
        XCTAssertEqual(one.samples.floats.map(\.bitPattern), two.samples.floats.map(\.bitPattern), "bit-identical per index")

        // A rerun after a "kill" that lost the last shard keeps the others and redoes only that one.
        try FileManager.default.removeItem(atPath: directory + "/two/samples-00000009-00000010.safetensors")
        let (s3, o3) = try run(ranks: 2, sample + ["--out-dir", directory + "/two"], command: "sample")
        XCTAssertEqual(s3, 0, o3)
        XCTAssertEqual(o3.components(separatedBy: "finished before, kept").count - 1, 3, o3)
        let again = try ShardedSampler.load(directory: directory + "/two")
        XCTAssertEqual(again.samples.floats.map(\.bitPattern), one.samples.floats.map(\.bitPattern))
    }
}

extension DataParallelTrainingTests {
    /// `loom sample --num-images` killed with SIGKILL after its first shards: the rerun keeps exactly
    /// the shards that were complete and gives the images of an uninterrupted run.
    func testKilledShardedSamplingResumes() throws {
        let loom = RepositoryPaths.root.appendingPathComponent(".build/debug/loom").path
        guard FileManager.default.isExecutableFile(atPath: loom) else { throw XCTSkip("no debug build of loom") }
        let latents = try writeLatents()
        try train(ranks: 1, ["--latents", latents, "--steps", "2", "--out", directory + "/model"])
        let sample = ["sample", "--checkpoint", directory + "/model/checkpoint.safetensors", "--num-images", "60",
                      "--shard-size", "2", "--batch", "2", "--steps", "20", "--seed", "3"]
        let folder = directory + "/killed"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: loom)
        process.arguments = sample + ["--out-dir", folder]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        func shards() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }
        }
        let deadline = Date().addingTimeInterval(60)
        while shards().count < 2, process.isRunning, Date() < deadline { usleep(10_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let complete = shards().count
        XCTAssertGreaterThanOrEqual(complete, 2)
        XCTAssertLessThan(complete, 30, "the run finished before it could be killed; make it longer")
        let (status, output) = try run(ranks: 1, Array(sample.dropFirst()) + ["--out-dir", folder], command: "sample")
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.components(separatedBy: "finished before, kept").count - 1, complete, output)
        let (status2, output2) = try run(ranks: 1, Array(sample.dropFirst()) + ["--out-dir", directory + "/straight"], command: "sample")
        XCTAssertEqual(status2, 0, output2)
        let resumed = try ShardedSampler.load(directory: folder), straight = try ShardedSampler.load(directory: directory + "/straight")
        XCTAssertEqual(resumed.samples.floats.map(\.bitPattern), straight.samples.floats.map(\.bitPattern))
    }
}
