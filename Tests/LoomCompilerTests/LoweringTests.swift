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

/// Audits lowered plans against their graphs, deriving everything from the plan itself (not from
/// the lowering's own bookkeeping): in-place writes only where legal, no two live values
/// overlapping in the arena, pinned inputs and outputs sharing memory with nothing, `update.*`
/// outputs written into their parameter only when nothing reads the old value afterwards.
final class LoweringTests: XCTestCase {
    // MARK: random elementwise DAGs

    func testRandomElementwiseDAGs() throws {
        var inPlace = 0, updatesInPlace = 0
        for seed in UInt64(1)...40 {
            let (graph, inputs, parameters) = try Self.randomGraph(seed: seed)
            for fuse in [false, true] {
                let plan = try Pipeline.inference(fuse: fuse).plan(graph)
                try check(graph, plan: plan, inputs: inputs, parameters: parameters, "seed \(seed), fuse \(fuse)")
                inPlace += plan.memory.inPlaceCount
                for output in plan.graph.outputs where output.name.hasPrefix(Naming.updatePrefix) {
                    if case .parameter = plan.locations[output.node] { updatesInPlace += 1 }
                }
            }
        }
        // The generator must exercise what the audit checks.
        XCTAssertGreaterThan(inPlace, 40)
        XCTAssertGreaterThan(updatesInPlace, 20)
    }

    /// Also the lowering alone, on unsimplified graphs (dead values, duplicate constants).
    func testRandomDAGsWithoutPasses() throws {
        for seed in UInt64(41)...60 {
            let (graph, inputs, parameters) = try Self.randomGraph(seed: seed)
            try check(graph, plan: try PlanLowering.lower(graph), inputs: inputs, parameters: parameters, "seed \(seed), no passes")
        }
    }

    // MARK: hand-made cases

    /// An update whose kernel reads the old parameter in a way that cannot be done in place (a
    /// matrix product) must not be written into the parameter.
    func testUpdateIsNotWrittenOverAnOperandItsKernelStillReads() throws {
        let b = GraphBuilder(name: "update_matmul")
        let x = b.input("x", TensorType(.f32, [4, 4]))
        let w = b.parameter("w", [4, 4], initializer: .zeros)
        b.output("update.w", w.matmul(x))
        let graph = try b.build()
        let inputs = ["x": TestTensors.random([4, 4], seed: 50)]
        let parameters = ["w": TestTensors.random([4, 4], seed: 51)]
        try check(graph, plan: try Pipeline.inference().plan(graph), inputs: inputs, parameters: parameters, "update = w·x")
        // The same with the transposed product and a softmax over the parameter's rows (legal).
        let c = GraphBuilder(name: "update_softmax")
        let v = c.parameter("w", [4, 4], initializer: .zeros)
        c.output("update.w", v.softmax())
        let softmaxGraph = try c.build()
        let softmaxPlan = try Pipeline.inference().plan(softmaxGraph)
        try check(softmaxGraph, plan: softmaxPlan, inputs: [:], parameters: parameters, "update = softmax(w)")
    }

    /// An `update.*` output whose parameter nothing else reads: the plan must keep the parameter
    /// (in its table, with the update written into it), not drop it as dead and lose the update.
    func testUpdateOfAParameterNothingElseReads() throws {
        let b = GraphBuilder(name: "update_unread")
        let x = b.input("x", TensorType(.f32, [5]))
        _ = b.parameter("p", [5], initializer: .zeros)
        b.output("update.p", x.tanh())
        b.output("y", x.sin())
        let graph = try b.build()
        let plan = try Pipeline.inference().plan(graph)
        XCTAssertEqual(plan.parameterTable.map(\.name), ["p"], IRPrinter.print(plan.graph))
        XCTAssertTrue(Self.audit(plan).isEmpty, Self.audit(plan).joined(separator: "\n"))
        let executor = try PlanExecutor(plan: plan, threads: 1)
        try executor.setParameters(["p": TestTensors.random([5], seed: 54)])
        let input = TestTensors.random([5], seed: 55)
        _ = try executor.run(inputs: ["x": input])
        XCTAssertEqual(executor.parameters()["p"]?.floats.count, 5, "the update of p was lost")
    }

    /// A value read after an in-place candidate's consumer (through a view) keeps its memory.
    func testViewReadLaterBlocksInPlace() throws {
        let b = GraphBuilder(name: "view_later")
        let x = b.input("x", TensorType(.f32, [2, 8]))
        let a = x.tanh()
        let view = a.reshape([16])
        let c = a.sin()             // would like to overwrite a …
        let d = view.exp()          // … but a is still read here, through the view
        b.output("y", c + d.reshape([2, 8]))
        let graph = try b.build()
        let plan = try Pipeline.inference(fuse: false).plan(graph)
        guard case .arena(let offsetA) = plan.locations[a.id], case .arena(let offsetC) = plan.locations[c.id] else {
            return XCTFail("values not in the arena")
        }
        XCTAssertNotEqual(offsetA, offsetC)
        try check(graph, plan: plan, inputs: ["x": TestTensors.random([2, 8], seed: 52)], parameters: [:], "view read later")
    }

    /// rotate_pairs reads each element's neighbour and must never run in place; a broadcast read
    /// of a smaller operand must not be overwritten either.
    func testKernelsThatCannotRunInPlace() throws {
        let b = GraphBuilder(name: "no_in_place")
        let x = b.input("x", TensorType(.f32, [3, 8]))
        let r = x.tanh().rotatePairs()
        let row = x.sum(axes: [0], keepDims: true).tanh()   // [1, 8], dies at the next node
        b.output("y", (r + row).softmax())
        let graph = try b.build()
        for fuse in [false, true] {
            let plan = try Pipeline.inference(fuse: fuse).plan(graph)
            try check(graph, plan: plan, inputs: ["x": TestTensors.random([3, 8], seed: 53)], parameters: [:],
                      "rotate_pairs, fuse \(fuse)")
        }
    }

    // MARK: the tiny SiT training step

    func testTinySiTTrainingPlan() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 4, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 8, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        let config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 2, steps: 1)
        let graph = try Trainer.trainingGraph(config)
        for fuse in [false, true] {
            let plan = try Pipeline.inference(fuse: fuse).plan(graph)
            let problems = Self.audit(plan)
            XCTAssertTrue(problems.isEmpty, "fuse \(fuse):\n" + problems.prefix(20).joined(separator: "\n"))
            XCTAssertGreaterThan(plan.memory.inPlaceCount, 0)
            // Every optimizer update goes straight into its parameter: nothing reads the old
            // weights or moments after the update is computed. Fused, the updates are views of
            // the `adamw` result at their parameters' own offsets.
            let updates = plan.graph.outputs.filter { $0.name.hasPrefix(Naming.updatePrefix) }
            XCTAssertFalse(updates.isEmpty)
            let offsets = Dictionary(uniqueKeysWithValues: plan.parameterTable.map { ($0.name, $0.offset) })
            for output in updates {
                var id = output.node
                while case .alias(let other) = plan.locations[id] { id = other }
                let key = String(output.name.dropFirst(Naming.updatePrefix.count))
                switch plan.locations[id] {
                case .parameter(let at), .parameterView(let at):
                    XCTAssertEqual(at, offsets[key], "fuse \(fuse): \(output.name) is written at \(at), its parameter lies at \(offsets[key] ?? -1)")
                default:
                    XCTFail("fuse \(fuse): \(output.name) is not written into its parameter (\(plan.locations[id]))")
                }
            }
            if fuse {
                XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "adamw" }.count, 1)
                XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "sum_squares" }.count, 1)
            }
            // The planner's own check agrees.
            let (_, requests, memory) = try PlanLowering.analyze(plan.graph)
            XCTAssertEqual(MemoryPlanner.violations(memory, requests, alignment: PlanLowering.alignment), [])
        }
    }
}
