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

/// The compiled training step (fusion, memory plan, updates written in place) against the
/// reference executor: every state tensor — weights, AdamW moments, EMA — after every step, and
/// the compiled plan at 2 threads against 1 thread. Synthetic data, so no data set is needed.
final class CompiledTrainingTests: XCTestCase {
    /// Compares every state tensor of two trainers; returns the worst relative error.
    @discardableResult
    func compareStates(_ mine: Trainer, _ reference: Trainer, tolerance: Double, _ label: String,
                       file: StaticString = #filePath, line: UInt = #line) -> Double {
        let a = mine.state.tensors, b = reference.state.tensors
        XCTAssertEqual(Set(a.keys), Set(b.keys), "\(label): state keys", file: file, line: line)
        XCTAssertEqual(mine.state.step, reference.state.step, label, file: file, line: line)
        var worst = 0.0
        var kinds: Set<String> = []
        for (name, value) in b {
            guard let other = a[name] else { continue }
            let error = GoldenCheck.relativeError(other, value)
            XCTAssertLessThanOrEqual(error, tolerance, "\(label): \(name)", file: file, line: line)
            worst = max(worst, error)
            kinds.insert(name.hasPrefix("optim.m.") ? "m" : name.hasPrefix("optim.v.") ? "v" : name.hasPrefix("ema.") ? "ema" : "weight")
        }
        XCTAssertEqual(kinds, ["m", "v", "ema", "weight"], "\(label): the state should hold weights, moments and EMA",
                       file: file, line: line)
        return worst
    }

    /// Runs `steps` steps on the compiled and reference backends (and the compiled one at 2
    /// threads), comparing the losses and the whole state after every step.
    func run(_ config: TrainingConfig, steps: Int, state: TrainingState? = nil, _ label: String,
             file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try SyntheticData.dataset(config.model)
        let reference = try Trainer(config: config, dataset: data, state: state, threads: 1, backend: .reference)
        let compiled = try Trainer(config: config, dataset: data, state: state, threads: 1, backend: .compiled)
        // The 2-thread trainer runs the plan read back from its file form.
        let plan = try Trainer.trainingPlan(config)
        XCTAssertTrue(plan.graph.nodes.contains { if case .fused = $0.op { return true } else { return false } },
                      "\(label): the compiled training plan has no fused kernels", file: file, line: line)
        XCTAssertGreaterThan(plan.memory.inPlaceCount, 0, label, file: file, line: line)
        let compiledTwo = try Trainer(config: config, dataset: data, state: state, threads: 2,
                                      plan: try Plan.decode(plan.encoded(), source: "\(label).plan"))
        compareStates(compiled, reference, tolerance: 0, "\(label), initial state", file: file, line: line)
        for step in 1...steps {
            let r = try reference.step(), c = try compiled.step(), c2 = try compiledTwo.step()
            // A non-finite gradient poisons every tensor; say so once instead of per tensor.
            guard r.gradNorm.isFinite else {
                return XCTFail("\(label), step \(step): the reference gradient norm is \(r.gradNorm) (loss \(r.loss))",
                               file: file, line: line)
            }
            XCTAssertEqual(Double(c2.loss), Double(c.loss), accuracy: 1e-4 * max(1, Double(abs(c.loss))),
                           "\(label), step \(step): loss at 2 threads", file: file, line: line)
            XCTAssertEqual(Double(c.loss), Double(r.loss), accuracy: 1e-4 * max(1, Double(abs(r.loss))),
                           "\(label), step \(step): loss", file: file, line: line)
            XCTAssertEqual(Double(c.gradNorm), Double(r.gradNorm), accuracy: 1e-4 * max(1, Double(r.gradNorm)),
                           "\(label), step \(step): grad norm", file: file, line: line)
            if let ri = r.lossInter {
                XCTAssertEqual(Double(c.lossInter ?? .nan), Double(ri), accuracy: 1e-4 * max(1, Double(ri)),
                               "\(label), step \(step): IG loss", file: file, line: line)
            }
            let worst = compareStates(compiled, reference, tolerance: 1e-4, "\(label), step \(step): compiled vs reference",
                                      file: file, line: line)
            let threads = compareStates(compiledTwo, compiled, tolerance: 0, "\(label), step \(step): 2 threads vs 1",
                                        file: file, line: line)
            print("\(label), step \(step): loss \(r.loss), compiled vs reference \(worst), 2 vs 1 threads \(threads)")
        }
        // The trainer really ran a compiled plan: its state is the executor's parameter region.
        XCTAssertGreaterThan(compiled.state.tensors.count, 0)
    }

    func testTinySiTWithIG() throws {
        // Large enough (64 tokens, batch 8) for the kernels to split their work over 2 threads;
        // every kernel computes each output the same way in any split, so the 2-thread state is
        // bit-identical to the 1-thread one.
        let model = ModelConfig(backbone: .sit, inputSize: 16, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        var config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                                    batch: 8, steps: 3, learningRate: 1e-3, seed: 11, labelDropout: 0.25)
        config.optimizer.weightDecay = 0.01
        try run(config, steps: 3, "SiT+IG")
    }

    func testTinyDiTDDPMLearnSigma() throws {
        let model = ModelConfig(backbone: .dit, inputSize: 8, inChannels: 1, learnSigma: true, patch: 4,
                                hidden: 16, depth: 1, heads: 2, numClasses: 3)
        let config = TrainingConfig(model: model, loss: LossSettings(objective: .ddpmEps, vbLoss: true),
                                    batch: 4, steps: 2, learningRate: 1e-3, seed: 12)
        try run(config, steps: 2, "DiT ddpm_eps learn_sigma")
    }

    func lightningConfig() -> TrainingConfig {
        let model = ModelConfig(backbone: .lightningdit, inputSize: 4, inChannels: 2, learnSigma: false, patch: 1,
                                hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        return TrainingConfig(model: model, loss: LossSettings(objective: .flowSit, cosineLoss: true),
                              batch: 4, steps: 2, learningRate: 1e-3, seed: 13, timeSampling: .logitNormal)
    }

    /// Compiled vs reference from a state whose output heads are not zero (so the cosine term's
    /// norms are not zero; see the next test for the fresh state).
    func testTinyLightningDiTCosineLoss() throws {
        let config = lightningConfig()
        var state = TrainingState(graph: try Trainer.trainingGraph(config), seed: config.seed)
        var k: UInt64 = 0
        for name in state.tensors.keys.sorted() where name.hasPrefix("final_layer") && name.hasSuffix("linear.weight") {
            k += 1
            state.tensors[name] = TestTensors.random(state.tensors[name]!.shape, seed: 900 + k, low: -0.2, high: 0.2)
            state.tensors["ema." + name] = state.tensors[name]
        }
        XCTAssertEqual(k, 2, "both heads perturbed")
        try run(config, steps: 2, state: state, "LightningDiT flow_sit cosine")
    }

    /// From a fresh state the zero-initialised heads predict exactly 0, where the cosine term's
    /// norm ‖a‖·‖b‖ is 0: its gradient must still be finite (PyTorch's cosine_similarity gives a
    /// finite gradient there), otherwise the first step turns every weight into NaN.
    func testTinyLightningDiTCosineLossFromFreshState() throws {
        try run(lightningConfig(), steps: 2, "LightningDiT flow_sit cosine, fresh state")
    }
}
