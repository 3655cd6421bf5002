import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// The plan file format (`LOOM-PLAN 4 <checksum>`, a JSON header, the IR text): round trips, deterministic
/// output, and clear errors for damaged files and mismatched parameters.
final class PlanFileTests: XCTestCase {
    static let tinySiT = ModelConfig(backbone: .sit, inputSize: 4, inChannels: 1, learnSigma: false, patch: 2,
                                     hidden: 8, depth: 1, heads: 2, numClasses: 3, igLayer: 1)

    /// Forward graph of the tiny SiT+IG model.
    func forwardGraph() throws -> Graph {
        try DiffusionTransformer(Self.tinySiT).forwardGraph(batch: 2)
    }

    /// Training step of the tiny SiT+IG model (autodiff + AdamW + EMA, `update.*` outputs).
    func trainingGraph() throws -> Graph {
        try Trainer.trainingGraph(TrainingConfig(model: Self.tinySiT, loss: LossSettings(objective: .flowRepa),
                                                 batch: 2, steps: 1))
    }

    /// Asserts that `body` throws a `RuntimeError` whose message contains every string of `parts`.
    func assertFails(_ label: String, _ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Void) {
        assertThrows(RuntimeError.self, mentioning: parts, label, file: file, line: line, body)
    }

    // MARK: round trip and determinism

    func testRoundTrip() throws {
        for (label, graph) in [("forward", try forwardGraph()), ("training", try trainingGraph())] {
            for fuse in [false, true] {
                let plan = try Pipeline.inference(fuse: fuse).plan(graph)
                let text = plan.encoded()
                XCTAssertTrue(text.hasPrefix("LOOM-PLAN \(Plan.formatVersion) ") && text.contains("\n{\""), label)
                let back = try Plan.decode(text, source: "\(label).plan")
                XCTAssertEqual(back.graph.nodes, plan.graph.nodes, "\(label), fuse \(fuse): nodes")
                XCTAssertEqual(back.graph.outputs, plan.graph.outputs, "\(label), fuse \(fuse): outputs")
                XCTAssertEqual(back.graph.name, plan.graph.name, "\(label), fuse \(fuse): name")
                XCTAssertEqual(back.locations, plan.locations, "\(label), fuse \(fuse): locations")
                XCTAssertEqual(back.memory, plan.memory, "\(label), fuse \(fuse): memory report")
                // Remarks are comments: printed in the file, dropped by the parser.
                XCTAssertEqual(back.graph.remarks, [], label)
                for remark in plan.graph.remarks { XCTAssertTrue(text.contains("  // " + remark + "\n"), remark) }
                // Encoding the decoded plan gives the same text less the remark lines (and so its
                // own checksum on the first line).
                let withoutRemarks = text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
                    .filter { !$0.hasPrefix("  // ") }.joined(separator: "\n")
                let reencoded = back.encoded()
                XCTAssertEqual(String(reencoded[reencoded.index(after: reencoded.firstIndex(of: "\n")!)...]), withoutRemarks,
                               "\(label), fuse \(fuse): re-encoded text")
                XCTAssertEqual(PlanText.resealed(reencoded), reencoded)
            }
        }
    }

    /// Fusion on a training graph refuses some fusions, so the round trip above covers remarks.
    /// Lowering records each launch's thread partition from its shape; the file keeps it.
    func testPartitionsAreRecordedPerLaunch() throws {
        let b = GraphBuilder(name: "partitions")
        let tall = b.input("tall", TensorType(.f32, [1, 512, 64]))
        let wide = b.input("wide", TensorType(.f32, [1, 40, 96]))
        let small = b.input("small", TensorType(.f32, [1, 4, 8]))
        b.output("a", b.scoped("tall") { Linear(b, 64, 256)(tall) })      // 8.4M MACs, taller than wide
        b.output("b", b.scoped("wide") { Linear(b, 96, 400)(wide) })      // 1.5M MACs, 40 rows × 400
        b.output("c", b.scoped("small") { Linear(b, 8, 8)(small.tanh()) })
        let plan = try Pipeline.inference().plan(try b.build())
        func partition(_ scope: String, _ mnemonic: String) -> LaunchPartition? {
            plan.graph.nodes.first { $0.scope == scope && $0.op.mnemonic == mnemonic }.map { plan.partitions[$0.id] }
        }
        XCTAssertEqual(partition("tall", "linear"), .rows)
        XCTAssertEqual(partition("wide", "linear"), .columns)
        XCTAssertEqual(partition("small", "linear"), .single)
        XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "tanh" }.map { plan.partitions[$0.id] }, [.blocks])
        XCTAssertTrue(plan.graph.nodes.filter { if case .parameter = $0.op { return true } else { return false } }
            .allSatisfy { plan.partitions[$0.id] == .none })
        let decoded = try Plan.decode(plan.encoded(), source: "partitions.plan")
        XCTAssertEqual(decoded.partitions, plan.partitions)
        // A hand-edited partition is followed (and gives the same result: any partition is exact).
        var edited = plan
        for id in edited.partitions.indices where edited.partitions[id] == .rows { edited.partitions[id] = .columns }
        let inputs = ["tall": TestTensors.random([1, 512, 64], seed: 1), "wide": TestTensors.random([1, 40, 96], seed: 2),
                      "small": TestTensors.random([1, 4, 8], seed: 3)]
        let parameters = ParameterInitializer.initialize(plan.graph, seed: 4)
        var results: [[String: HostTensor]] = []
        for candidate in [plan, try Plan.decode(edited.encoded(), source: "edited.plan")] {
            let executor = try PlanExecutor(plan: candidate, threads: 2)
            try executor.setParameters(parameters)
            results.append(try executor.run(inputs: inputs))
        }
        XCTAssertEqual(results[0], results[1])
    }

    func testTrainingPlanHasRemarks() throws {
        let plan = try Pipeline.inference().plan(try trainingGraph())
        XCTAssertFalse(plan.graph.remarks.isEmpty)
    }

    func testWriteAndRead() throws {
        let plan = try Pipeline.inference().plan(try trainingGraph())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-plan-\(UUID()).plan").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try plan.write(to: path)
        let back = try Plan.read(path: path)
        XCTAssertEqual(back.graph.nodes, plan.graph.nodes)
        XCTAssertEqual(back.locations, plan.locations)
        XCTAssertEqual(back.memory, plan.memory)
        assertFails("missing file", [path + ".missing", "cannot read plan"]) { _ = try Plan.read(path: path + ".missing") }
    }

    /// Compiling the same graph twice (and a freshly traced copy of it) gives the same bytes.
    func testCompilationIsDeterministic() throws {
        for make in [forwardGraph, trainingGraph] {
            let first = try Pipeline.inference().plan(try make()).encoded()
            let second = try Pipeline.inference().plan(try make()).encoded()
            XCTAssertEqual(first, second)
            XCTAssertEqual(Array(first.utf8), Array(second.utf8))
        }
    }

    // MARK: damaged files

    func testWrongMagic() throws {
        let text = try Pipeline.inference().plan(try forwardGraph()).encoded()
        for bad in [text.replacingOccurrences(of: "LOOM-PLAN \(Plan.formatVersion)", with: "LOOM-PLAM \(Plan.formatVersion)"),
                    "graph g {\n}\n", "", "\u{FEFF}" + text] {
            assertFails("wrong magic", ["bad.plan", "not a Loom plan", "LOOM-PLAN \(Plan.formatVersion)"]) {
                _ = try Plan.decode(bad, source: "bad.plan")
            }
        }
    }

    func testUnsupportedVersion() throws {
        let text = try Pipeline.inference().plan(try forwardGraph()).encoded()
        for version in ["1", "3", "5", "0", "x"] {
            let bad = "LOOM-PLAN \(version)" + text.dropFirst("LOOM-PLAN \(Plan.formatVersion)".count)
            assertFails("version \(version)", ["v.plan", "version \(version)", "not supported", "version \(Plan.formatVersion)"]) {
                _ = try Plan.decode(bad, source: "v.plan")
            }
        }
    }

    /// A file cut anywhere after its first line reports a damaged or truncated plan, never
    /// "not a Loom plan".
    func testTruncatedFile() throws {
        let text = try Pipeline.inference().plan(try forwardGraph()).encoded()
        let bytes = Array(text.utf8)
        let headerStart = bytes.firstIndex(of: UInt8(ascii: "\n"))! + 1
        let headerEnd = bytes[headerStart...].firstIndex(of: UInt8(ascii: "\n"))!
        let irMiddle = headerEnd + (bytes.count - headerEnd) / 2
        // Inside the IR text: after the graph line, mid-instruction, just before the closing brace.
        let irCuts = [headerEnd + 1, headerEnd + 12, irMiddle, irMiddle + 7, bytes.count - 2]
        for cut in irCuts {
            let cutText = String(decoding: bytes[..<cut], as: UTF8.self)
            assertFails("cut at byte \(cut) of \(bytes.count) (IR text)", ["t.plan", "truncated"]) {
                _ = try Plan.decode(cutText, source: "t.plan")
            }
        }
        // Inside the JSON header, and right after it (the IR text is missing altogether).
        let headerCuts = [headerStart + 1, (headerStart + headerEnd) / 2, headerEnd - 1, headerEnd, headerEnd + 1]
        for cut in headerCuts {
            let cutText = String(decoding: bytes[..<cut], as: UTF8.self)
            do {
                _ = try Plan.decode(cutText, source: "t.plan")
                XCTFail("cut at byte \(cut) (header): no error")
            } catch let error as RuntimeError {
                XCTAssertTrue(error.message.hasPrefix("t.plan: ") && !error.message.contains("not a Loom plan")
                              && (error.message.contains("truncated") || error.message.contains("damaged")),
                              "cut at byte \(cut) of \(bytes.count), inside the header: \"\(error.message)\" should say the plan is truncated")
            }
        }
    }

    func testEditsWithoutANewChecksumAreRefused() throws {
        let plan = try Pipeline.inference().plan(try forwardGraph())
        let text = plan.encoded()
        XCTAssertTrue(text.contains("\"writer\":\"\(Plan.writer)\""))
        guard case .arena(let offset) = plan.locations.last! else { return XCTFail("last node is not in the arena") }
        let edited = text.replacingOccurrences(of: "\"a\(offset)\"]", with: "\"a0\"]")
        XCTAssertNotEqual(edited, text)
        assertFails("edited location", ["e.plan", "checksum does not match"]) { _ = try Plan.decode(edited, source: "e.plan") }
        let body = text.replacingOccurrences(of: "scale=", with: "scale=1")
        assertFails("edited body", ["e.plan", "checksum"]) { _ = try Plan.decode(body, source: "e.plan") }
        XCTAssertNoThrow(try Plan.decode(PlanText.resealed(text), source: "same.plan"))
    }

    func testDamagedHeader() throws {
        let text = try Pipeline.inference().plan(try forwardGraph()).encoded()
        let bad = PlanText.resealed(text.replacingOccurrences(of: "\"arenaBytes\"", with: "\"arenaBites\""))
        assertFails("renamed key", ["h.plan", "header is damaged"]) { _ = try Plan.decode(bad, source: "h.plan") }
    }

    func testLocationOutsideTheArena() throws {
        let plan = try Pipeline.inference().plan(try forwardGraph())
        let text = plan.encoded()
        // The last node lives in the arena (an output); move it past the end of the arena.
        let last = plan.graph.nodes.count - 1
        guard case .arena(let offset) = plan.locations[last] else { return XCTFail("last node is not in the arena") }
        let moved = plan.memory.arenaBytes
        let edited = PlanText.resealed(text.replacingOccurrences(of: "\"a\(offset)\"]", with: "\"a\(moved)\"]"))
        XCTAssertNotEqual(edited, text)
        assertFails("edited location", ["e.plan", "%\(last)", "offset \(moved)", "outside", "\(plan.memory.arenaBytes)-byte arena"]) {
            _ = try Plan.decode(edited, source: "e.plan")
        }
        // One byte short of fitting is still outside.
        let bytes = storageBytes(plan.graph.nodes[last].type)
        let tight = PlanText.resealed(text.replacingOccurrences(of: "\"a\(offset)\"]", with: "\"a\(plan.memory.arenaBytes - bytes + 1)\"]"))
        assertFails("edited location, one byte over", ["e.plan", "outside"]) { _ = try Plan.decode(tight, source: "e.plan") }
        // An unknown location kind.
        let garbled = PlanText.resealed(text.replacingOccurrences(of: "\"a\(offset)\"]", with: "\"z\(offset)\"]"))
        assertFails("bad location kind", ["e.plan", "bad location", "%\(last)"]) { _ = try Plan.decode(garbled, source: "e.plan") }
    }

    /// An edited alias location on a value larger than the one it points at would let the
    /// executor read past the end of the arena; the layout check must catch it.
    func testAliasToASmallerValueIsRejected() throws {
        let plan = try Pipeline.inference().plan(try forwardGraph())
        let last = plan.graph.nodes.count - 1
        guard case .arena(let offset) = plan.locations[last] else { return XCTFail("last node is not in the arena") }
        let small = plan.graph.nodes.first { storageBytes($0.type) < storageBytes(plan.graph.nodes[last].type) }!
        let edited = PlanText.resealed(plan.encoded().replacingOccurrences(of: "\"a\(offset)\"]", with: "\"v\(small.id)\"]"))
        assertFails("alias to a smaller value", ["e.plan", "%\(last)"]) { _ = try Plan.decode(edited, source: "e.plan") }
    }

    // MARK: parameters

    func testSetParametersErrors() throws {
        let plan = try Pipeline.inference().plan(try forwardGraph())
        let executor = try PlanExecutor(plan: plan, threads: 1)
        let good = ParameterInitializer.initialize(plan.graph, seed: 1)
        XCTAssertEqual(Set(good.keys), Set(plan.parameterTable.map(\.name)))
        XCTAssertNoThrow(try executor.setParameters(good))
        let key = "blocks.0.attn.qkv.weight"
        XCTAssertNotNil(good[key])

        var missing = good
        missing[key] = nil
        assertFails("missing parameter", ["missing 1 parameter", key]) { try executor.setParameters(missing) }

        var reshaped = good
        reshaped[key] = HostTensor(shape: [24, 9], floats: [Float](repeating: 0, count: 216))
        assertFails("wrong shape", ["\"\(key)\"", "expects f32[24,8]", "found f32[24,9]"]) {
            try executor.setParameters(reshaped)
        }

        var integer = good
        integer[key] = HostTensor(shape: [24, 8], ints: [Int64](repeating: 0, count: 192))
        assertFails("wrong dtype", ["\"\(key)\"", "f32[24,8]", "i64[24,8]"]) { try executor.setParameters(integer) }

        var extra = good
        extra["blocks.0.attn.qkv.weight_orig"] = HostTensor(shape: [1], floats: [0])
        assertFails("extra tensor", ["1 tensor(s)", "not in the plan's parameter table", "blocks.0.attn.qkv.weight_orig"]) {
            try executor.setParameters(extra)
        }
        XCTAssertNoThrow(try executor.setParameters(extra, ignoringExtra: true))
    }

    /// A plan read back from its file runs and gives the same outputs as the plan it came from.
    func testDecodedPlanRunsTheSame() throws {
        let graph = try forwardGraph()
        let plan = try Pipeline.inference().plan(graph)
        let back = try Plan.decode(plan.encoded(), source: "rt.plan")
        let parameters = ParameterInitializer.initialize(graph, seed: 3)
        var stream = RandomStream(seed: 4, stream: 0)
        let inputs = ["x": HostTensor(shape: [2, 1, 4, 4], floats: stream.normal(32)),
                      "t": HostTensor(shape: [2], floats: [0.25, 0.75]),
                      "y": HostTensor(shape: [2], ints: [0, 2])]
        var outputs: [[String: HostTensor]] = []
        for p in [plan, back] {
            let executor = try PlanExecutor(plan: p, threads: 1)
            try executor.setParameters(parameters)
            outputs.append(try executor.run(inputs: inputs))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(Set(outputs[0].keys), ["out_final", "out_inter"])
    }
}
