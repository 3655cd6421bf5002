import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// Sizes and values from flags, metadata and plan text that used to trap, hang or abort: each now
/// gives an error that names the value.
final class HostileInputTests: XCTestCase {
    func assertThrows(_ body: @autoclosure () throws -> Any, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
    }

    func testTensorSizesAreCheckedWithoutOverflow() {
        XCTAssertNil(SizeLimits.elementCount([4_294_967_296, 4_294_967_296]))
        XCTAssertNil(SizeLimits.elementCount([Int.max, 2]))
        XCTAssertNil(SizeLimits.elementCount([-1, 4]))
        XCTAssertEqual(SizeLimits.elementCount([1 << 20, 1 << 20]), 1 << 40)
        XCTAssertNil(SizeLimits.add(Int.max, 1))
        assertThrows(try TypeInference.infer(.input(name: "x"), [], declared: TensorType(.f32, [1 << 21, 1 << 21])),
                     contains: "2^40")
        assertThrows(try TypeInference.infer(.unpatchify(patch: Int.max, gridH: Int.max, gridW: 2), [TensorType(.f32, [1, 4, 4])],
                                             declared: nil), contains: "grid")
        assertThrows(try IRParser.parse("graph g {\n  %0 = input \"x\" : f32[4294967296,4294967296]\n  return x = %0\n}\n", source: "t"),
                     contains: "2^40")
    }

    func testModelSizesHaveLimits() {
        for (hidden, input, depth, classes) in [(1 << 62, 32, 2, 10), (64, 1 << 31, 2, 10), (64, 32, 100_000_000, 10),
                                                (64, 32, 2, Int.max), (64, 32, 2, -5)] {
            let config = ModelConfig(backbone: .sit, inputSize: input, inChannels: 1, learnSigma: false, patch: 2,
                                     hidden: hidden, depth: depth, heads: 2, numClasses: classes, igLayer: nil)
            XCTAssertThrowsError(try config.validate(), "\(config)")
        }
        // A batch too large for any tensor is an error from the builder, not a trap.
        let config = ModelConfig(backbone: .sit, inputSize: 32, inChannels: 4, learnSigma: false, patch: 2, hidden: 64,
                                 depth: 2, heads: 2, numClasses: 10, igLayer: nil)
        assertThrows(try DiffusionTransformer(config).forwardGraph(batch: 1 << 40), contains: "2^40")
    }

    func testPlanHeadersAndBodiesAreChecked() throws {
        let model = try DiffusionTransformer(ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false,
                                                         patch: 2, hidden: 32, depth: 1, heads: 2, numClasses: 4, igLayer: nil))
        let text = try Pipeline.inference().plan(try model.forwardGraph(batch: 1)).encoded()
        let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        var header = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        var locations = header["locations"] as! [String]
        let arena = locations.firstIndex { $0.hasPrefix("a") }!
        locations[arena] = "a9223372036854775807"
        header["locations"] = locations
        let tampered = PlanText.resealed(lines[0] + "\n" + String(decoding: try JSONSerialization.data(withJSONObject: header), as: UTF8.self) + "\n" + lines[2])
        assertThrows(try Plan.decode(tampered, source: "p.plan"), contains: "overflows")

        let zeroGrid = PlanText.resealed(text.replacingOccurrences(of: "sincos_2d(4,4)", with: "sincos_2d(0,0)"))
        XCTAssertNotEqual(zeroGrid, text)
        assertThrows(try Plan.decode(zeroGrid, source: "p.plan"), contains: "initializer grid 0×0")

        var plan = try Plan.decode(text, source: "p.plan")
        plan.memory.arenaBytes = 1 << 62
        assertThrows(try PlanExecutor(plan: plan, threads: 1), contains: "more than this machine")
    }

    func testStoredConfigurationsAreValidated() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 32, inChannels: 1, learnSigma: false, patch: 4, hidden: 32,
                                depth: 2, heads: 2, numClasses: 10, igLayer: 1)
        let good = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 8, steps: 1).json()
        for (from, to, expected) in [("\"batch\":8", "\"batch\":-8", "--batch"), ("\"numClasses\":10", "\"numClasses\":-5", "classes -5"),
                                     ("\"hidden\":32", "\"hidden\":1099511627776", "hidden 1099511627776"),
                                     ("\"numClasses\":10", "\"numClasses\":1099511627776", "classes 1099511627776")] {
            let bad = good.replacingOccurrences(of: from, with: to)
            XCTAssertNotEqual(bad, good)
            assertThrows(try TrainingConfig.from(json: bad, source: "c.safetensors"), contains: expected)
        }
    }

    func testSpecialFilesAreNamedForWhatTheyAre() throws {
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("loom-fifo-\(UUID().uuidString)").path
        guard mkfifo(fifo, 0o600) == 0 else { throw XCTSkip("mkfifo failed") }
        defer { try? FileManager.default.removeItem(atPath: fifo) }
        assertThrows(try Plan.read(path: fifo), contains: "FIFO")
        assertThrows(try SafeTensors.read(path: fifo), contains: "FIFO")
        assertThrows(try SafeTensors.read(path: "/dev/zero"), contains: "character device")
        assertThrows(try Plan.read(path: FileManager.default.temporaryDirectory.path), contains: "directory")
    }

    func testHugeOperandListsAreRefusedQuicklyWithAShortMessage() throws {
        let operands = Array(repeating: "%0", count: IRParser.maxOperands + 1).joined(separator: ", ")
        let text = "graph g {\n  %0 = input \"x\" : f32[1]\n  %1 = concat(\(operands)) axis=0 : f32[\(IRParser.maxOperands + 1)]\n  return y = %1\n}\n"
        XCTAssertThrowsError(try IRParser.parse(text, source: "t")) { error in
            XCTAssertTrue("\(error)".contains("more than \(IRParser.maxOperands) operands"), "\(error)")
            XCTAssertLessThan("\(error)".count, 500)
        }
        let many = describeOperands(Array(0..<1000), Array(repeating: TensorType(.f32, [1]), count: 1000))
        XCTAssertTrue(many.hasSuffix("… and 992 more"))
    }

    func testThreadCountsAndMemoryAreChecked() {
        for bad in [0, -1, Int.max] { assertThrows(try Threading.resolve(bad), contains: "--threads") }
        XCTAssertEqual(try Threading.resolve(2), 2)
        assertThrows(try MachineMemory.check(Int.max, 1, what: "x"), contains: "more bytes than can be counted")
        assertThrows(try MachineMemory.check(1 << 62, what: "x"), contains: "more than this machine")
        XCTAssertNoThrow(try MachineMemory.check(1 << 20, what: "x"))
    }
}

/// The plan verifier refuses plans whose memory is inconsistent even when their checksum is right.
final class PlanVerifierTests: XCTestCase {
    func trainingPlan() throws -> Plan {
        let config = TrainingConfig(model: ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2,
                                                       hidden: 32, depth: 2, heads: 2, numClasses: 4, igLayer: 1),
                                    loss: LossSettings(objective: .flowRepa), batch: 2, steps: 1)
        return try Trainer.trainingPlan(config)
    }

    func decodeEdited(_ plan: Plan, _ edit: (inout [String]) -> Void) throws -> Plan {
        let text = plan.encoded()
        let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        var header = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        var locations = header["locations"] as! [String]
        edit(&locations)
        header["locations"] = locations
        let json = String(decoding: try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), as: UTF8.self)
        return try Plan.decode(PlanText.resealed(lines[0] + "\n" + json + "\n" + lines[2]), source: "v.plan")
    }

    func testCompiledPlansPassAndEditedOnesAreRefused() throws {
        let plan = try trainingPlan()
        XCTAssertNoThrow(try PlanVerifier.verify(plan, source: "compiled"))
        XCTAssertNoThrow(try decodeEdited(plan) { _ in })

        // Two values alive at once made to share bytes: the first launch in the arena whose value is
        // read later is moved onto an input's bytes (inputs live for the whole run).
        let inputID = plan.graph.inputNodes.first { storageBytes($0.type) >= 64 }!.id
        guard case .arena(let inputOffset) = plan.locations[inputID] else { return XCTFail("input not in the arena") }
        let victim = plan.graph.nodes.first { node in
            guard case .arena = plan.locations[node.id], !node.op.isLeaf else { return false }
            return storageBytes(node.type) <= storageBytes(plan.graph.nodes[inputID].type)
        }!
        XCTAssertThrowsError(try decodeEdited(plan) { $0[victim.id] = "a\(inputOffset)" }) { error in
            XCTAssertTrue("\(error)".contains("launch %\(victim.id)") && "\(error)".contains("input or output"), "\(error)")
        }

        // A launch moved into the parameter region.
        XCTAssertThrowsError(try decodeEdited(plan) { $0[victim.id] = "p0" }) { error in
            XCTAssertTrue("\(error)".contains("parameter region"), "\(error)")
        }
    }
}
