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

/// The optimizer stage's fused form (`sum_squares` and one `adamw` launch over the flat state)
/// against its primitive form: the whole state after several steps, with and without clipping,
/// weight decay and EMA; and the refusals that keep the in-place update sound.
final class OptimizerFusionTests: XCTestCase {
    /// The pipeline's stages with the optimizer written in primitive ops (kernel fusion still on).
    static func primitiveOptimizerPlan(_ config: TrainingConfig) throws -> Plan {
        let source = try Trainer.lossGraph(config)
        var graph = try PassManager(passes: [AttentionKernelPass(), AutodiffPass(), SimplifyPass(), HoistConditioningPass(),
                                             OptimizerPass(settings: config.optimizer, fused: false), FusionPass(),
                                             SimplifyPass(name: "simplify-after-fusion")]).run(source)
        graph.name = "primitive"
        var plan = try PlanLowering.lower(graph)
        plan.metadata = TrainingPlanHeader.metadata(for: config)
        return plan
    }

    func config(_ adjust: (inout AdamWSettings) -> Void) -> TrainingConfig {
        let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        var config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                                    batch: 4, steps: 3, learningRate: 2e-3, seed: 21)
        adjust(&config.optimizer)
        return config
    }

    func compare(_ config: TrainingConfig, _ label: String) throws {
        let fused = try Trainer.trainingPlan(config)
        let primitive = try Self.primitiveOptimizerPlan(config)
        func count(_ plan: Plan, _ mnemonic: String) -> Int { plan.graph.nodes.filter { $0.op.mnemonic == mnemonic }.count }
        XCTAssertEqual(count(fused, "adamw"), 1, label)
        XCTAssertEqual(count(fused, "sum_squares"), 1, label)
        XCTAssertEqual(count(primitive, "adamw"), 0, label)
        XCTAssertFalse(fused.graph.remarks.contains { $0.contains("adamw") }, "\(label): \(fused.graph.remarks)")
        XCTAssertLessThan(fused.graph.nodes.count, primitive.graph.nodes.count, label)

        let data = try SyntheticData.dataset(config.model)
        let a = try Trainer(config: config, dataset: data, threads: 1, plan: fused)
        let b = try Trainer(config: config, dataset: data, threads: 1, plan: primitive)
        let a2 = try Trainer(config: config, dataset: data, threads: 2, plan: try Plan.decode(fused.encoded(), source: "fused.plan"))
        for step in 1...3 {
            let (la, lb, la2) = (try a.step(), try b.step(), try a2.step())
            XCTAssertEqual(Double(la.gradNorm), Double(lb.gradNorm), accuracy: 1e-5 * Double(lb.gradNorm), "\(label), step \(step)")
            XCTAssertEqual(la2.gradNorm, la.gradNorm, "\(label), step \(step): grad norm at 2 threads")
            let (sa, sb, sa2) = (a.state.tensors, b.state.tensors, a2.state.tensors)
            XCTAssertEqual(Set(sa.keys), Set(sb.keys), label)
            for (name, value) in sb {
                XCTAssertLessThanOrEqual(GoldenCheck.relativeError(sa[name]!, value), 1e-5, "\(label), step \(step): \(name)")
                XCTAssertLessThanOrEqual(GoldenCheck.relativeError(sa2[name]!, sa[name]!), 1e-4, "\(label), step \(step): \(name) at 2 threads")
            }
        }
    }

    func testFusedUpdateMatchesPrimitiveNodes() throws {
        try compare(config { $0.weightDecay = 0.05; $0.clipNorm = 0.01 }, "clip (active), weight decay, EMA")
    }

    func testFusedUpdateWithoutClipDecayOrEMA() throws {
        try compare(config { $0.weightDecay = 0; $0.clipNorm = nil; $0.emaDecay = nil }, "plain AdamW")
    }

    /// The state is laid out back to back and the update's outputs are views of it at each
    /// parameter's own offset; the hoisted adaLN weights stay one contiguous view.
    func testStateIsUpdatedInPlace() throws {
        let plan = try Trainer.trainingPlan(config { _ in })
        guard let adamw = plan.graph.nodes.first(where: { $0.op.mnemonic == "adamw" }),
              case .fused(.adamw(let u)) = adamw.op, case .parameter(let base) = plan.locations[adamw.id] else {
            return XCTFail("no adamw launch in the parameter region")
        }
        var expected = base
        for operand in adamw.inputs[u.segments..<u.firstScalar] {
            XCTAssertEqual(plan.locations[operand], .parameter(expected), plan.graph.nodes[operand].op.parameterName ?? "")
            expected += storageBytes(plan.graph.nodes[operand].type)
        }
        XCTAssertEqual(expected - base, storageBytes(adamw.type))
        XCTAssertTrue(plan.graph.nodes.contains { node in
            if case .concat = node.op, case .parameterView = plan.locations[node.id] { return true } else { return false }
        }, "the hoisted conditioning weights are still a view")
    }

    /// A parameter that is also a graph output would change under an in-place update: the stage
    /// writes the primitive optimizer instead, says why, and the step still compiles and lowers.
    func testRefusesWhenAParameterIsAGraphOutput() throws {
        let gradients = try Pipeline.differentiate(try Trainer.lossGraph(config { _ in }))
        let b = GraphBuilder(extending: gradients)
        let weight = gradients.parameterNodes.first { $0.op.parameterName == "final_layer.linear.weight" }!
        b.output("exposed", b.tensor(weight.id))
        let extended = try b.build()
        let result = try OptimizerPass(settings: AdamWSettings(), fused: true).run(extended)
        XCTAssertFalse(result.nodes.contains { $0.op.mnemonic == "adamw" })
        XCTAssertTrue(result.remarks.contains { $0.hasPrefix("fusion refused: adamw in optimizer:") && $0.contains("final_layer.linear.weight") },
                      "\(result.remarks)")
        let plan = try Pipeline.inference().plan(result)
        XCTAssertTrue(IRPrinter.print(plan.graph).contains("fusion refused: adamw"))
    }

    /// Lowering checks the in-place update itself (plans can be edited by hand).
    func testLoweringRejectsAStateReadAfterTheUpdate() throws {
        let fused = try Trainer.trainingGraph(config { _ in })
        let b = GraphBuilder(extending: fused)
        let m = fused.parameterNodes.first { $0.op.parameterName == "optim.m.final_layer.linear.bias" }!
        b.output("late", b.tensor(m.id) * 2)
        XCTAssertThrowsError(try PlanLowering.lower(try b.build())) { error in
            let message = (error as? IRError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("optim.m.final_layer.linear.bias") && message.contains("reads it afterwards"), message)
        }
    }

    /// `sum_squares` (as the optimizer stage emits it) over uneven segments: the same bits at 1 and 2 threads, and the sum of squares
    /// to float precision.
    func testSumSquaresKernel() throws {
        let b = GraphBuilder(name: "norm")
        let shapes = [[300, 211], [7], [1], [50_003], [64, 64]]
        let xs = shapes.enumerated().map { b.input("x\($0.offset)", TensorType(.f32, $0.element)) }
        b.output("grad_norm", b.append(.fused(.sumSquares), xs).sqrt())
        let graph = try b.build()
        let plan = try Pipeline.inference().plan(graph)
        XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "sum_squares" }.count, 1)
        var inputs: [String: HostTensor] = [:]
        var exact = 0.0
        for (i, shape) in shapes.enumerated() {
            let x = TestTensors.random(shape, seed: 70 + UInt64(i), low: -2, high: 2)
            exact += x.floats.reduce(0.0) { $0 + Double($1) * Double($1) }
            inputs["x\(i)"] = x
        }
        let one = try PlanExecutor(plan: plan, threads: 1).run(inputs: inputs)["grad_norm"]!.floats[0]
        let two = try PlanExecutor(plan: plan, threads: 2).run(inputs: inputs)["grad_norm"]!.floats[0]
        XCTAssertEqual(one, two)
        XCTAssertEqual(Double(one), exact.squareRoot(), accuracy: 1e-6 * exact.squareRoot())
    }
}
