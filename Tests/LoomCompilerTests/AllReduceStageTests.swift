import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomDistributed
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// The `allreduce` stage of data-parallel training steps: where the pipeline puts it, what it
/// emits, its IR text, and that over one rank (`SingleProcess`) the step is exactly the plain step.
final class AllReduceStageTests: XCTestCase {
    static let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2,
                                   hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
    static let config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                                       batch: 4, steps: 3, learningRate: 1e-3, seed: 5, labelDropout: 0.25)

    func testStageRunsBetweenHoistAndOptimizerOnlyForDataParallelSteps() {
        let names = Trainer.pipeline(Self.config, ranks: 2).stageNames
        let (hoist, allreduce, optimizer) = (names.firstIndex(of: "hoist"), names.firstIndex(of: AllReducePass().name),
                                             names.firstIndex(of: "optimizer"))
        XCTAssertNotNil(allreduce, "\(names)")
        XCTAssertEqual(allreduce.map { $0 - 1 }, hoist, "\(names)")
        XCTAssertEqual(allreduce.map { $0 + 1 }, optimizer, "\(names)")
        XCTAssertFalse(Trainer.pipeline(Self.config).stageNames.contains(AllReducePass().name))
    }

    func testOneLaunchOverEveryGradientFeedsTheOptimizer() throws {
        let plan = try Trainer.trainingPlan(Self.config, ranks: 2)
        let reductions = plan.graph.nodes.filter { $0.op == .fused(.allReduce) }
        XCTAssertEqual(reductions.count, 1)
        let trainable = plan.graph.parameterNodes.filter {
            if case .parameter(_, _, true) = $0.op { return true } else { return false }
        }
        let total = trainable.reduce(0) { $0 + $1.type.elementCount }
        XCTAssertEqual(reductions.first?.type, TensorType(.f32, [total]))
        XCTAssertEqual(TrainingPlanHeader.ranks(of: plan), 2)
        // Each rank's step is compiled for its share of the batch.
        let x = plan.graph.inputNodes.first { $0.op == .input(name: "x0") }
        XCTAssertEqual(x?.type.shape.first, Self.config.batch / 2)
        // The IR text of the stage reads back to the same graph.
        var pipeline = Trainer.pipeline(Self.config, ranks: 2)
        var dumped = ""
        pipeline.dumpAfter = [AllReducePass().name]
        pipeline.dump = { _, text in dumped = text }
        let graph = try pipeline.run(try Trainer.lossGraph(Self.config, ranks: 2))
        XCTAssertTrue(dumped.contains("= allreduce("), String(dumped.prefix(400)))
        XCTAssertEqual(try IRParser.parse(IRPrinter.print(graph)).nodes, graph.nodes)
    }

    func testOneRankStepEqualsThePlainStepBitForBit() throws {
        let data = try SyntheticData.dataset(Self.model)
        let plain = try Trainer(config: Self.config, dataset: data, threads: 1)
        // The full batch compiled with the allreduce stage, run by one process: mean over one rank.
        let withStage = try Trainer.compile(Self.config, pipeline: Trainer.pipeline(Self.config, ranks: 2)).plan
        XCTAssertTrue(withStage.graph.nodes.contains { $0.op == .fused(.allReduce) })
        let reduced = try Trainer(config: Self.config, dataset: data, threads: 1, plan: withStage,
                                  communicator: SingleProcess())
        for step in 1...3 {
            let a = try plain.step(), b = try reduced.step()
            XCTAssertEqual(a.loss, b.loss, "step \(step)")
            XCTAssertEqual(a.gradNorm, b.gradNorm, "step \(step)")
        }
        let (x, y) = (plain.state.tensors, reduced.state.tensors)
        XCTAssertEqual(Set(x.keys), Set(y.keys))
        for (name, value) in x { XCTAssertEqual(value.floats, y[name]?.floats, name) }
    }

    func testBatchTheRanksCannotShareIsRefusedNamingBoth() {
        XCTAssertThrowsError(try Trainer.trainingPlan(Self.config, ranks: 3)) { error in
            let message = (error as? DiffusionError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("--batch 4") && message.contains("3 ranks"), message)
        }
    }
}
