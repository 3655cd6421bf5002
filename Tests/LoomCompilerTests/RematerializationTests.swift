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

/// Block rematerialisation and `--memory-budget`: a plan that recomputes blocks trains exactly
/// like the fast plan and the reference, holds less memory, and the budget search picks the
/// fewest blocks that fit.
final class RematerializationTests: XCTestCase {
    func config() -> TrainingConfig {
        let model = ModelConfig(backbone: .sit, inputSize: 16, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 16, depth: 3, heads: 2, numClasses: 3, igLayer: 1)
        return TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                              batch: 8, steps: 3, learningRate: 1e-3, seed: 21, labelDropout: 0.25)
    }

    /// Wide and deep enough for activations to dominate the arena.
    func largerConfig() -> TrainingConfig {
        var config = config()
        config.model.hidden = 32
        config.model.depth = 4
        config.batch = 16
        return config
    }

    /// The optimised training step with `blocks` rematerialised, lowered; its header carries
    /// `config` so the trainer accepts it.
    func rematPlan(_ graph: Graph, blocks: [String], config: TrainingConfig? = nil) throws -> Plan {
        var plan = try PlanLowering.lower(try RematerializationPass(blocks: blocks).run(graph))
        if let config { plan.metadata = TrainingPlanHeader.metadata(for: config) }
        return plan
    }

    /// The budget stage of the pipeline.
    func fit(_ config: TrainingConfig, budget: Int) throws -> (plan: Plan, fit: BudgetFit) {
        let output = try Trainer.compile(config, pipeline: Trainer.pipeline(config, memoryBudget: budget))
        return (output.plan, try XCTUnwrap(output.budgetFit))
    }

    func testRecomputedBlocksTrainLikeTheReference() throws {
        let config = config()
        let graph = try Trainer.trainingGraph(config)
        XCTAssertEqual(RematerializationPass.candidateBlocks(graph), ["blocks.0", "blocks.1", "blocks.2"])
        let plan = try rematPlan(graph, blocks: ["blocks.0", "blocks.1", "blocks.2"], config: config)
        XCTAssertEqual(plan.graph.remarks.filter { $0.hasPrefix("remat: blocks.") }.count, 3, plan.graph.remarks.joined(separator: "\n"))
        let fast = try Trainer.trainingPlan(config)
        XCTAssertGreaterThan(plan.graph.nodes.count, fast.graph.nodes.count, "the recomputation adds launches")

        let data = try SyntheticData.dataset(config.model)
        let reference = try Trainer(config: config, dataset: data, threads: 1, backend: .reference)
        let fastTrainer = try Trainer(config: config, dataset: data, threads: 1, plan: fast)
        let lean = try Trainer(config: config, dataset: data, threads: 1,
                               plan: try Plan.decode(plan.encoded(), source: "remat.plan"))
        let leanTwo = try Trainer(config: config, dataset: data, threads: 2, plan: plan)
        for step in 1...3 {
            let r = try reference.step(), f = try fastTrainer.step(), l = try lean.step(), l2 = try leanTwo.step()
            // Same kernels on the same values: the recomputed plan matches the fast one exactly.
            XCTAssertEqual(l.loss, f.loss, "step \(step): loss")
            XCTAssertEqual(l.gradNorm, f.gradNorm, "step \(step): grad norm")
            XCTAssertEqual(Double(l.loss), Double(r.loss), accuracy: 1e-4 * max(1, Double(abs(r.loss))), "step \(step)")
            XCTAssertEqual(Double(l2.loss), Double(l.loss), accuracy: 1e-4 * max(1, Double(abs(l.loss))), "step \(step), 2 threads")
        }
        let a = lean.state.tensors, b = fastTrainer.state.tensors, c = reference.state.tensors, d = leanTwo.state.tensors
        XCTAssertEqual(Set(a.keys), Set(c.keys))
        for (name, value) in c {
            XCTAssertEqual(a[name], b[name], "\(name): recomputed vs fast plan")
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(a[name]!, value), 1e-4, "\(name): vs reference")
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(d[name]!, a[name]!), 1e-4, "\(name): 2 threads vs 1")
        }
    }

    func testRecomputationShrinksTheArena() throws {
        let graph = try Trainer.trainingGraph(largerConfig())
        let fast = try PlanLowering.lower(graph)
        let half = try rematPlan(graph, blocks: ["blocks.0", "blocks.1"])
        let all = try rematPlan(graph, blocks: RematerializationPass.candidateBlocks(graph))
        XCTAssertLessThan(half.memory.arenaBytes, fast.memory.arenaBytes)
        XCTAssertLessThan(all.memory.arenaBytes, half.memory.arenaBytes)
        XCTAssertEqual(all.memory.parameterBytes, fast.memory.parameterBytes, "parameters and state are not recomputed")
        print("arena: fast \(fast.memory.arenaBytes), 2 blocks \(half.memory.arenaBytes), all \(all.memory.arenaBytes)")
    }

    func testBudgetPicksTheFewestBlocksThatFit() throws {
        let graph = try Trainer.trainingGraph(largerConfig())
        let fast = try PlanLowering.lower(graph)
        let fastBytes = fast.memory.arenaBytes + fast.memory.parameterBytes

        let roomy = try fit(largerConfig(), budget: fastBytes).fit
        XCTAssertEqual(roomy.rematerialized, [], "a budget the fast plan meets needs no recomputation")
        XCTAssertEqual(roomy.extraMACs, 0)

        let all = try rematPlan(graph, blocks: RematerializationPass.candidateBlocks(graph))
        let allBytes = all.memory.arenaBytes + all.memory.parameterBytes
        let (tightPlan, tight) = try fit(largerConfig(), budget: allBytes)
        XCTAssertLessThanOrEqual(tight.fittedBytes, allBytes)
        XCTAssertEqual(tightPlan.memory.arenaBytes + tightPlan.memory.parameterBytes, tight.fittedBytes)
        XCTAssertFalse(tight.rematerialized.isEmpty)
        XCTAssertGreaterThan(tight.extraMACs, 0, "recomputing costs multiply-adds")
        XCTAssertLessThan(tight.extraComputeFraction, 0.5, "at most one extra forward of the blocks")
        if tight.rematerialized.count > 1 {
            // One block fewer must not fit, or the search did not pick the fewest.
            let fewer = try rematPlan(graph, blocks: Array(tight.rematerialized.dropLast()))
            XCTAssertGreaterThan(fewer.memory.arenaBytes + fewer.memory.parameterBytes, allBytes)
        }
        XCTAssertTrue(tight.summary.contains("rematerialising"), tight.summary)

        XCTAssertThrowsError(try fit(largerConfig(), budget: fast.memory.parameterBytes)) { error in
            XCTAssertTrue("\(error)".contains("does not fit"), "\(error)")
        }
    }

    func testUnknownBlockIsNamed() throws {
        let graph = try Trainer.trainingGraph(config())
        XCTAssertThrowsError(try RematerializationPass(blocks: ["blocks.9"]).run(graph)) { error in
            XCTAssertTrue("\(error)".contains("blocks.9"), "\(error)")
        }
        let forward = try DiffusionTransformer(config().model).forwardGraph(batch: 2)
        XCTAssertThrowsError(try RematerializationPass(blocks: ["blocks.0"]).run(forward)) { error in
            XCTAssertTrue("\(error)".contains("training graph"), "\(error)")
        }
    }
}
