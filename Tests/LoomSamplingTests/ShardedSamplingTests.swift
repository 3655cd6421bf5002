import Foundation
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import XCTest

/// Sharded sampling: image i depends only on (seed, i) — not on the number of processes, the shard
/// size or the batch — and a rerun keeps finished shards.
final class ShardedSamplingTests: TemporaryDirectoryTestCase {
    let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2, hidden: 16,
                            depth: 2, heads: 2, numClasses: 3, igLayer: 1)

    func job(batch: Int) throws -> SamplingJob {
        let graph = try DiffusionTransformer(model).forwardGraph(batch: 1)
        var weights = ParameterInitializer.initialize(graph, seed: 5)
        var stream = RandomStream(seed: 5, stream: 99)
        for name in weights.keys.sorted() where weights[name]!.floats.allSatisfy({ $0 == 0 }) {
            let value = weights[name]!
            weights[name] = HostTensor(shape: value.shape, floats: stream.normal(value.elementCount, std: 0.05))
        }
        return SamplingJob(model: model, weights: weights, sampler: SamplerSettings(kind: .eulerMaruyama, steps: 4, objective: .flowRepa),
                           guidance: GuidanceSettings(mode: .ig, weight: 1.5, cfgScale: 1), batch: batch, seed: 11, threads: 1)
    }

    func sampler(_ folder: String, batch: Int, shardSize: Int) throws -> ShardedSampler {
        try ShardedSampler(job: try job(batch: batch), count: 10, shardSize: shardSize, directory: directory + "/" + folder,
                           description: "test run")
    }

    /// With `stopOnInterruption`, Ctrl-C during a batch ends the job at the next batch boundary;
    /// without it, the job runs to the end.
    func testInterruptionStopsBetweenBatches() throws {
        defer { Interruption.clear() }
        let labels: [Int64] = [0, 1, 2, 0, 1, 2, 0]
        XCTAssertThrowsError(try job(batch: 3).run(labels: labels, stopOnInterruption: true) { _, _ in Interruption.request() }) {
            XCTAssertEqual(($0 as? Interruption.Stopped)?.message, "sampling stopped after 3 of 7 images")
        }
        Interruption.clear()
        let whole = try job(batch: 3).run(labels: labels) { _, _ in Interruption.request() }
        XCTAssertEqual(whole.shape[0], 7)
    }

    /// One process against two (same shard size and batch: a GEMM library may order its sums
    /// differently for another batch size, so bit-identity is promised per shard layout).
    func testImagesDependOnlyOnTheirIndex() throws {
        let one = try sampler("one", batch: 3, shardSize: 3)
        try one.run()
        let two = try sampler("two", batch: 3, shardSize: 3)
        let rank0 = try two.run(rank: 0, size: 2), rank1 = try two.run(rank: 1, size: 2)
        XCTAssertEqual(rank0.map(\.0), [0..<3, 6..<9])
        XCTAssertEqual(rank1.map(\.0), [3..<6, 9..<10])
        let (a, labelsA) = try ShardedSampler.load(directory: one.directory)
        let (b, labelsB) = try ShardedSampler.load(directory: two.directory)
        XCTAssertEqual(a.shape, [10, 1, 8, 8])
        XCTAssertEqual(labelsA, (0..<10).map { Int64($0 % 3) })
        XCTAssertEqual(labelsA, labelsB)
        XCTAssertEqual(a.floats.map(\.bitPattern), b.floats.map(\.bitPattern), "bit-identical per index")
        // Another batch split of the same images: equal to float rounding (noise and labels are
        // those of the index).
        let whole = try job(batch: 5).run(labels: labelsA)
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(whole, a), 1e-5)
    }

    func testRerunKeepsFinishedShardsAndRedoesTheRest() throws {
        let first = try sampler("run", batch: 4, shardSize: 4)
        try first.run()
        let before = try ShardedSampler.load(directory: first.directory)
        // "Killed" after the first shard: the others are gone (one half-written temporary stays).
        for shard in first.shards.dropFirst() { try FileManager.default.removeItem(atPath: first.path(shard)) }
        XCTAssertTrue(FileManager.default.createFile(atPath: first.directory + "/samples-00000004-00000008.safetensors.tmp-1-2", contents: Data([1, 2])))
        var lines: [String] = []
        let again = try sampler("run", batch: 4, shardSize: 4).run { lines.append($0) }
        XCTAssertEqual(again.map(\.1), [false, true, true], "only the missing shards are computed")
        XCTAssertTrue(lines[0].contains("kept"), "\(lines)")
        let after = try ShardedSampler.load(directory: first.directory)
        XCTAssertEqual(after.samples.floats.map(\.bitPattern), before.samples.floats.map(\.bitPattern))
        // A shard of another run is not kept.
        let other = try ShardedSampler(job: try job(batch: 4), count: 10, shardSize: 4, directory: first.directory,
                                       description: "another run")
        XCTAssertFalse(other.isFinished(0..<4))
    }

    func testLoadRefusesGaps() throws {
        let s = try sampler("gap", batch: 4, shardSize: 4)
        try s.run()
        try FileManager.default.removeItem(atPath: s.path(4..<8))
        assertError(["images 4..<8 are missing"]) { _ = try ShardedSampler.load(directory: s.directory) }
    }
}

