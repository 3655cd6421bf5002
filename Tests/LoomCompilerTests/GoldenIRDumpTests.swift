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

/// Golden IR text for the fusion and memory-planning passes on a tiny model, compared with the
/// files under `Tests/Fixtures/ir/`. Any change to what the passes produce shows up here as a
/// text diff.
///
/// To regenerate the fixtures after an intended change, run the tests with `LOOM_UPDATE_GOLDEN=1`:
///
///     LOOM_UPDATE_GOLDEN=1 swift test --filter GoldenIRDumpTests
///
/// The tests then rewrite the files instead of comparing (and pass); read the diff before
/// committing it.
final class GoldenIRDumpTests: XCTestCase {
    static let fixtures = RepositoryPaths.fixtures.appendingPathComponent("ir")

    static let updating = ProcessInfo.processInfo.environment["LOOM_UPDATE_GOLDEN"] == "1"

    /// The tiny SiT+IG model of the dumps.
    static let tiny = ModelConfig(backbone: .sit, inputSize: 4, inChannels: 1, learnSigma: false, patch: 2,
                                  hidden: 8, depth: 1, heads: 2, numClasses: 3, igLayer: 1)

    /// Compares `text` with fixture `name` (or rewrites it when updating), reporting the first
    /// line that differs.
    func assertGolden(_ text: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = Self.fixtures.appendingPathComponent(name)
        if Self.updating {
            try FileManager.default.createDirectory(at: Self.fixtures, withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
            print("GoldenIRDumpTests: rewrote \(url.path)")
            return
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            return XCTFail("missing fixture \(url.path); run with LOOM_UPDATE_GOLDEN=1 to create it", file: file, line: line)
        }
        guard text != expected else { return }
        let mine = text.split(separator: "\n", omittingEmptySubsequences: false)
        let theirs = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let index = zip(mine, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(mine.count, theirs.count)
        let got = index < mine.count ? String(mine[index]) : "<end of text>"
        let want = index < theirs.count ? String(theirs[index]) : "<end of file>"
        XCTFail("""
            \(name) differs from the golden file at line \(index + 1) \
            (rerun with LOOM_UPDATE_GOLDEN=1 to accept the new output):
              expected: \(want)
              got:      \(got)
            """, file: file, line: line)
    }

    func forwardGraph() throws -> Graph {
        try DiffusionTransformer(Self.tiny).forwardGraph(batch: 1)
    }

    /// The forward graph after simplify → fusion → simplify.
    func testFusedForwardIR() throws {
        let optimised = try Pipeline.inference().run(try forwardGraph())
        let text = IRPrinter.print(optimised)
        try assertGolden(text, "tiny_fusion.loomir")
        // What the dump must show whatever the exact numbering: every fused kernel kind an
        // inference graph gets, and no leftover pattern that should have been fused.
        for kernel in ["norm_modulate(", "linear(", "token_attention(", "fused_elementwise("] {
            XCTAssertTrue(text.contains(" = " + kernel), "no \(kernel) in:\n\(text)")
        }
        XCTAssertFalse(text.contains("softmax("), "an unfused softmax is left:\n\(text)")
        XCTAssertFalse(text.contains("matmul("), "a GEMM without its epilogue is left:\n\(text)")
        // With the IG head after the last block, both heads normalise the same stream: simplify
        // merges the two layer_norms, and the shared norm cannot disappear into either head's
        // norm_modulate, which the remarks say.
        XCTAssertEqual(optimised.nodes.filter { $0.op == .layerNorm(eps: TokenNorm.eps) }.count, 1)
        XCTAssertEqual(optimised.remarks.filter { $0.hasPrefix("fusion refused: norm_modulate") && $0.contains("read by 2 nodes") }.count,
                       2, "\(optimised.remarks)")
        // The dump is parseable IR.
        XCTAssertEqual(try IRParser.parse(text).nodes, optimised.nodes)
    }

    /// The compiled plan's file text: header with the memory report and every value's location,
    /// then the optimised IR.
    func testPlanText() throws {
        let plan = try Pipeline.inference().plan(try forwardGraph())
        let text = plan.encoded()
        try assertGolden(text, "tiny_plan.txt")
        // Sanity of the layout the golden file pins down.
        XCTAssertTrue(text.hasPrefix("LOOM-PLAN \(Plan.formatVersion) "))
        XCTAssertEqual(plan.locations.count, plan.graph.nodes.count)
        for (id, location) in plan.locations.enumerated() {
            let bytes = storageBytes(plan.graph.nodes[id].type)
            switch location {
            case .arena(let offset):
                XCTAssertEqual(offset % PlanLowering.alignment, 0, "%\(id)")
                XCTAssertLessThanOrEqual(offset + bytes, plan.memory.arenaBytes, "%\(id)")
            case .parameter(let offset), .parameterView(let offset):
                XCTAssertLessThanOrEqual(offset + bytes, plan.memory.parameterBytes, "%\(id)")
            case .alias(let other):
                XCTAssertLessThan(other, id)
            }
        }
        XCTAssertGreaterThanOrEqual(plan.memory.arenaBytes, plan.memory.lowerBound)
        XCTAssertLessThan(plan.memory.arenaBytes, plan.memory.totalRequested, "the arena reuses memory")
        XCTAssertEqual(LoweringTests.audit(plan), [])
    }

    /// Loss graph + autodiff of the tiny model after the passes: the backward pass reads the
    /// normalised activations, so norm + modulate fusion is refused, with a remark line.
    func testTrainingGraphIRShowsRefusedFusions() throws {
        let model = try DiffusionTransformer(Self.tiny)
        let loss = try objectiveGraph(model, batch: 1, settings: LossSettings(objective: .flowRepa))
        let graph = try Pipeline.differentiate(loss)
        let optimised = try Pipeline.inference().run(graph)
        let text = IRPrinter.print(optimised)
        try assertGolden(text, "tiny_train_fusion.loomir")
        let remarks = text.split(separator: "\n").filter { $0.hasPrefix("  // fusion refused: ") }
        XCTAssertFalse(remarks.isEmpty, "no refused-fusion remark in:\n\(text)")
        XCTAssertTrue(remarks.contains { $0.contains("norm_modulate in blocks.0") && $0.contains("backward pass needs it") },
                      remarks.joined(separator: "\n"))
        // Remarks come right after the graph line, before the first instruction.
        let lines = text.split(separator: "\n")
        let header = lines.dropFirst().prefix { $0.hasPrefix("  // ") }
        XCTAssertEqual(header.count, optimised.remarks.count)
        XCTAssertTrue(header.contains { $0.hasPrefix("  // fusion refused: ") }, header.joined(separator: "\n"))
        // Still parseable: remarks are comments.
        let parsed = try IRParser.parse(text)
        XCTAssertEqual(parsed.nodes, optimised.nodes)
        XCTAssertEqual(parsed.remarks, [])
    }

    /// Remarks are read next to IR that later passes renumber, so they name no node numbers:
    /// they name the pattern, its scope (one that exists in the dumped graph) and the shared op.
    func testRemarksNameScopesNotNodeNumbers() throws {
        let model = try DiffusionTransformer(Self.tiny)
        let training = try Autodiff.differentiate(try objectiveGraph(model, batch: 1, settings: LossSettings(objective: .flowRepa)),
                                                  loss: "loss")
        for (label, graph) in [("forward", try forwardGraph()), ("training", training)] {
            let optimised = try Pipeline.inference().run(graph)
            let scopes = Set(optimised.nodes.map(\.scope))
            for remark in optimised.remarks where remark.hasPrefix("fusion refused: ") {
                XCTAssertFalse(remark.contains("%"), "\(label): \(remark)")
                guard let inRange = remark.range(of: " in "), let colon = remark.range(of: ": ", range: inRange.upperBound..<remark.endIndex) else {
                    XCTFail("\(label): remark without a scope: \(remark)")
                    continue
                }
                let scope = String(remark[inRange.upperBound..<colon.lowerBound])
                XCTAssertTrue(scope == "top level" || scopes.contains(scope), "\(label): unknown scope '\(scope)' in \(remark)")
            }
        }
    }

    /// The dumps of `--dump-after` agree with printing the pipeline's result.
    func testPipelineDumps() throws {
        var dumps: [(String, String)] = []
        var passes = Pipeline.inference()
        passes.dumpAll = true
        passes.dump = { dumps.append(($0, $1)) }
        let result = try passes.run(try forwardGraph())
        XCTAssertEqual(dumps.map(\.0), passes.graphStages.map(\.name))
        XCTAssertEqual(dumps.last?.1, IRPrinter.print(result))
        let fusion = try XCTUnwrap(dumps.firstIndex { $0.0 == "fusion" })
        XCTAssertTrue(dumps[fusion - 1].1.contains("softmax("), "before fusion attention is primitives")
        XCTAssertFalse(dumps[fusion].1.contains("softmax("))
    }

    /// A training recipe dumps every stage in order, autodiff and the optimizer included, and the
    /// lowering stages after the graph stages.
    func testTrainingPipelineDumpsEveryStage() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 8, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        let config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 2, steps: 1)
        var pipeline = Trainer.pipeline(config, memoryBudget: 1 << 30)
        var dumps: [(String, String)] = []
        pipeline.dumpAll = true
        pipeline.dump = { dumps.append(($0, $1)) }
        let output = try Trainer.compile(config, pipeline: pipeline)
        XCTAssertEqual(dumps.map(\.0), ["attention-kernels", "autodiff", "simplify", "hoist", "optimizer", "fusion",
                                        "simplify-after-fusion", "remat", "precision", "lower", "memory-plan"])
        XCTAssertEqual(dumps.map(\.0), pipeline.stageNames)
        let text = Dictionary(dumps, uniquingKeysWith: { a, _ in a })
        XCTAssertTrue(text["attention-kernels"]!.contains("token_attention("))
        XCTAssertFalse(text["attention-kernels"]!.contains("output \"\(Naming.gradientPrefix)"))
        XCTAssertTrue(text["autodiff"]!.contains("token_attention_backward("))
        XCTAssertFalse(text["autodiff"]!.contains("adamw("))
        XCTAssertTrue(text["optimizer"]!.contains("adamw("), "the optimizer stage emits the fused update")
        XCTAssertTrue(text["optimizer"]!.contains("sum_squares("))
        XCTAssertTrue(text["lower"]!.contains("arena buffers"))
        XCTAssertTrue(text["memory-plan"]!.hasPrefix(Plan.magic))
        XCTAssertEqual(output.budgetFit?.rematerialized, [], "a roomy budget recomputes nothing")
        var unknown = pipeline
        unknown.dumpAfter = ["no-such-stage"]
        XCTAssertThrowsError(try Trainer.compile(config, pipeline: unknown)) { error in
            XCTAssertTrue("\(error)".contains("autodiff"), "the error lists the stages: \(error)")
        }
    }
}
