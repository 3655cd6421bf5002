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

/// A precompiled training plan never ignores a setting: run-time hyperparameters (lr, λ, ω, clip,
/// weight decay, EMA decay) apply — the run equals a run compiled with them — and a setting the
/// plan fixes is refused naming both values. `--limit` lives in the configuration.
final class TrainingPlanHeaderTests: XCTestCase {
    func config(_ adjust: (inout TrainingConfig) -> Void = { _ in }) -> TrainingConfig {
        let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        var config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                                    batch: 4, steps: 3, learningRate: 1e-3, seed: 5)
        adjust(&config)
        return config
    }

    func losses(_ trainer: Trainer, steps: Int = 3) throws -> [Float] {
        try (0..<steps).map { _ in try trainer.step().loss }
    }

    func testRunTimeHyperparametersApplyWithAPrecompiledPlan() throws {
        let plan = try Trainer.trainingPlan(config())
        let data = try SyntheticData.dataset(config().model, count: 16)
        let variants: [(String, (inout TrainingConfig) -> Void)] = [
            ("λ 2", { $0.loss.igLambda = 2 }),
            ("ω 0.5", { $0.loss.omega = 0.5 }),
            ("clip 0.01", { $0.optimizer.clipNorm = 0.01 }),
            ("no clip", { $0.optimizer.clipNorm = nil }),
            ("weight decay 0.1", { $0.optimizer.weightDecay = 0.1 }),
            ("lr 3e-3, EMA decay 0.5", { $0.learningRate = 3e-3; $0.optimizer.emaDecay = 0.5 }),
        ]
        let baseline = try losses(try Trainer(config: config(), dataset: data, threads: 1, plan: plan))
        for (label, adjust) in variants {
            let wanted = config(adjust)
            let withPlan = try Trainer(config: wanted, dataset: data, threads: 1, plan: plan)
            let compiledForIt = try Trainer(config: wanted, dataset: data, threads: 1)
            let (a, b) = (try losses(withPlan), try losses(compiledForIt))
            XCTAssertEqual(a, b, "\(label): the plan's run equals the run compiled with the setting")
            XCTAssertNotEqual(a, baseline, "\(label): the setting changed the run")
            for (name, value) in compiledForIt.state.tensors {
                XCTAssertEqual(withPlan.state.tensors[name], value, "\(label): \(name)")
            }
        }
    }

    func testSettingsThePlanFixesAreRefusedWithBothValues() throws {
        let plan = try Trainer.trainingPlan(config())
        let data = try SyntheticData.dataset(config().model, count: 16)
        let refusals: [(String, (inout TrainingConfig) -> Void, [String])] = [
            ("batch", { $0.batch = 8 }, ["--batch 4", "8"]),
            ("precision", { $0.precision = .bf16 }, ["--precision fp32", "bf16"]),
            ("EMA off", { $0.optimizer.emaDecay = nil }, ["--ema-decay", "no EMA"]),
            ("depth", { $0.model.depth = 3 }, ["--depth 2", "3"]),
            ("objective", { $0.loss.objective = .flowSit }, ["--objective flow_repa", "flow_sit"]),
        ]
        for (label, adjust, fragments) in refusals {
            XCTAssertThrowsError(try Trainer(config: config(adjust), dataset: data, threads: 1, plan: plan, planSource: "p.plan")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("p.plan"), "\(label): \(message)")
                for fragment in fragments { XCTAssertTrue(message.contains(fragment), "\(label): \(message) lacks \(fragment)") }
            }
        }
    }

    func testHeaderIsCarriedByThePlanFileAndChecked() throws {
        let plan = try Trainer.trainingPlan(config())
        let decoded = try Plan.decode(plan.encoded(), source: "t.plan")
        XCTAssertEqual(try TrainingPlanHeader.config(of: decoded, source: "t.plan"), config())
        var edited = decoded
        edited.metadata[Naming.trainingConfigKey] = config { $0.batch = 8 }.json()
        XCTAssertThrowsError(try TrainingPlanHeader.config(of: edited, source: "t.plan")) { error in
            XCTAssertTrue("\(error)".contains("hash"), "\(error)")
        }
        var bare = decoded
        bare.metadata = [:]
        XCTAssertThrowsError(try TrainingPlanHeader.config(of: bare, source: "t.plan")) { error in
            XCTAssertTrue("\(error)".contains("no training configuration"), "\(error)")
        }
        let forward = try Pipeline.inference().plan(try DiffusionTransformer(config().model).forwardGraph(batch: 4))
        XCTAssertThrowsError(try TrainingPlanHeader.config(of: forward, source: "f.plan")) { error in
            XCTAssertTrue("\(error)".contains("not a training plan"), "\(error)")
        }
    }

    /// The sample limit is part of the configuration: it selects the data, and a resumed run keeps it.
    func testLimitIsPartOfTheConfiguration() throws {
        let data = try SyntheticData.dataset(config().model, count: 16)
        let limited = try Trainer(config: config { $0.limit = 6 }, dataset: data, threads: 1)
        let prefix = try Trainer(config: config(), dataset: data.prefix(6), threads: 1)
        XCTAssertEqual(try losses(limited), try losses(prefix))
        let decoded = try TrainingConfig.from(json: config { $0.limit = 6 }.json(), source: "c")
        XCTAssertEqual(decoded.limit, 6)
        XCTAssertThrowsError(try config { $0.limit = 0 }.validate())
    }
}
