import Foundation
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// Records what the loop asks of the runner; echoes x (x_next = x).
final class RecordingRunner: StepRunner {
    struct Call { let cfg: Bool; let w: Float; let s: Float; let t: Float; let coef: [Float] }
    var calls: [Call] = []

    func run(_ inputs: [String: HostTensor], cfg: Bool) throws -> [String: HostTensor] {
        let coef = inputs["coef"]!.floats
        calls.append(Call(cfg: cfg, w: coef[0], s: coef[1], t: inputs["t"]!.floats[0], coef: coef))
        return ["x_next": inputs["x"]!]
    }
}

/// Guidance intervals are applied by the host loop; time grids, respacing and the plan.
final class SamplerLoopTests: XCTestCase {
    let shape = [1, 2, 2]

    func record(_ settings: SamplerSettings, _ guidance: GuidanceSettings) throws -> [RecordingRunner.Call] {
        let runner = RecordingRunner()
        let loop = try SamplerLoop(settings: settings, guidance: guidance, sampleShape: shape)
        var reported: [SamplerProgress] = []
        _ = try loop.sample(runner: runner, labels: [1, 2], seed: 0) { reported.append($0) }
        XCTAssertEqual(reported.count, runner.calls.count)
        XCTAssertEqual(reported.map(\.cfg), runner.calls.map(\.cfg))
        return runner.calls
    }

    func testIntervalsPickTheGraphAndWeight() throws {
        let guidance = GuidanceSettings(mode: .igCfg, weight: 1.5, cfgScale: 2,
                                        igInterval: NoiseInterval(lo: 0.3, hi: 1), cfgInterval: NoiseInterval(lo: 0, hi: 0.7))
        // REPA Euler: σ = t = 1 − i/10.
        let calls = try record(SamplerSettings(kind: .euler, steps: 10, objective: .flowRepa), guidance)
        XCTAssertEqual(calls.count, 10)
        for (i, call) in calls.enumerated() {
            let sigma = 1 - Double(i) / 10
            XCTAssertEqual(Double(call.t), sigma, accuracy: 1e-6)
            XCTAssertEqual(call.cfg, sigma <= 0.7 + 1e-9, "step \(i) σ \(sigma)")
            XCTAssertEqual(call.w, sigma >= 0.3 - 1e-9 ? 1.5 : 1, "step \(i) σ \(sigma)")
            XCTAssertEqual(call.s, call.cfg ? 2 : 1)
        }
        // SiT Heun with shift 0.3: σ = 1 − shifted τ, t = 1 − σ; the corrector is judged at the interval's end.
        let heun = try record(SamplerSettings(kind: .heun, steps: 4, objective: .flowSit, shift: 0.3), guidance)
        XCTAssertEqual(heun.count, 8)
        for (k, call) in heun.enumerated() {
            let tau = Double(k / 2 + k % 2) / 4
            let shifted = 0.3 * tau / (1 - 0.7 * tau), sigma = 1 - shifted
            XCTAssertEqual(Double(call.t), shifted, accuracy: 1e-6)
            XCTAssertEqual(call.cfg, sigma <= 0.7, "evaluation \(k) σ \(sigma)")
            XCTAssertEqual(call.w, sigma >= 0.3 ? 1.5 : 1, "evaluation \(k) σ \(sigma)")
        }
        // DDPM respaced to 10: t = round(i·999/9) on the original scale, σ = t/1000.
        let ddpm = try record(SamplerSettings(kind: .ddpm, steps: 10, objective: .ddpmEps), guidance)
        XCTAssertEqual(ddpm.map(\.t), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
        XCTAssertEqual(ddpm.map(\.cfg), ddpm.map { Double($0.t) / 1000 <= 0.7 })
        XCTAssertEqual(ddpm.map(\.w), ddpm.map { Double($0.t) / 1000 >= 0.3 ? 1.5 : 1 })
        // IG alone never doubles the batch; CFG alone always passes w = 1.
        XCTAssertFalse(try record(SamplerSettings(kind: .euler, steps: 5, objective: .flowRepa),
                                  GuidanceSettings(mode: .ig, weight: 2)).contains { $0.cfg })
        XCTAssert(try record(SamplerSettings(kind: .euler, steps: 5, objective: .flowRepa),
                             GuidanceSettings(mode: .cfg, weight: 2, cfgScale: 4)).allSatisfy { $0.cfg && $0.w == 1 })
    }

    func testGridsAndRespacing() throws {
        XCTAssertEqual(TimeGrid.flowODE(steps: 4), [1, 0.75, 0.5, 0.25, 0])
        XCTAssertEqual(TimeGrid.flowODE(steps: 2, shift: 0.3)[1], 1 - 0.15 / 0.65, accuracy: 1e-12)
        let sde = TimeGrid.flowSDE(steps: 3)
        XCTAssertEqual(sde.count, 4)
        for (a, b) in zip(sde, [1, 0.52, 0.04, 0]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        let spaced = TimeGrid.respacedSteps(trainSteps: 1000, count: 250)
        XCTAssertEqual(spaced.count, 250)
        XCTAssertEqual(Array(spaced[38..<46]), [152, 156, 160, 164, 169, 173, 177, 181])  // DiT's space_timesteps
        XCTAssertEqual(spaced.last, 999)
        let full = RespacedSchedule(base: DDPMSchedule(), steps: 1000)
        for (a, b) in zip(full.alphasCumprod, DDPMSchedule().alphasCumprod) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        let ten = RespacedSchedule(base: DDPMSchedule(), steps: 10)
        XCTAssertEqual(ten.alphasCumprod[3], DDPMSchedule().alphasCumprod[333], accuracy: 1e-12)
        XCTAssertEqual(ten.posteriorLogVarianceClipped[0], ten.posteriorLogVarianceClipped[1])
    }

    func testPlans() throws {
        // Heun's last interval by default: Euler for flow_repa (REPA / IG code), full for flow_sit.
        XCTAssertEqual(try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .flowRepa)).count, 9)
        XCTAssertEqual(try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .flowSit)).count, 10)
        XCTAssertEqual(try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .flowRepa,
                                                                   heunLastStepEuler: false)).count, 10)
        XCTAssertEqual(try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .flowSit,
                                                                   heunLastStepEuler: true)).count, 9)
        // A REPA corrector keeps the guidance decision of its interval's start; a SiT one tests its own σ.
        let repa = try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .flowRepa))
        XCTAssertEqual(repa[1].stage, .corrector)
        XCTAssertEqual(repa[1].guidanceSigma, repa[0].sigma, accuracy: 1e-12)
        let sitHeun = try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .flowSit))
        XCTAssertEqual(sitHeun[1].guidanceSigma, sitHeun[1].sigma, accuracy: 1e-12)
        // Euler–Maruyama: x_next = (1 + dt)x + dt(2 − σ)v + √(2σ|dt|)z, deterministic last step.
        let em = try SamplerPlan.evaluations(SamplerSettings(kind: .eulerMaruyama, steps: 3, objective: .flowRepa))
        XCTAssertEqual(em.count, 3)
        XCTAssertEqual(em[1].coefficients.cx, 1 - 0.48, accuracy: 1e-12)
        XCTAssertEqual(em[1].coefficients.cd, -0.48 * (2 - 0.52), accuracy: 1e-12)
        XCTAssertEqual(em[1].coefficients.cz, (2 * 0.52 * 0.48).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(em[2].coefficients.cz, 0)
        // The SiT convention predicts −v: the D coefficients flip sign.
        let sit = try SamplerPlan.evaluations(SamplerSettings(kind: .eulerMaruyama, steps: 3, objective: .flowSit))
        XCTAssertEqual(sit[1].coefficients.cd, -em[1].coefficients.cd)
        XCTAssertEqual(sit[1].modelTime, 1 - em[1].modelTime, accuracy: 1e-12)
        XCTAssertThrowsError(try SamplerPlan.evaluations(SamplerSettings(kind: .ddim, steps: 5, objective: .flowRepa)))
        XCTAssertThrowsError(try SamplerPlan.evaluations(SamplerSettings(kind: .heun, steps: 5, objective: .ddpmEps)))
    }

    func testNoiseIsKeyedBySampleIndex() {
        let all = SamplerLoop.stepNoise(seed: 4, step: 2, count: 6, sampleShape: shape)
        let tail = SamplerLoop.stepNoise(seed: 4, step: 2, firstSample: 4, count: 2, sampleShape: shape)
        XCTAssertEqual(Array(all.floats[16...]), tail.floats)
        XCTAssertNotEqual(SamplerLoop.initialNoise(seed: 4, count: 1, sampleShape: shape).floats,
                          SamplerLoop.stepNoise(seed: 4, step: 0, count: 1, sampleShape: shape).floats)
    }

    /// Zero-initialised adaLN and final layers get small random values so every head is live.
    func perturbed(_ parameters: [String: HostTensor], seed: UInt64) -> [String: HostTensor] {
        var out = parameters
        for (name, value) in parameters where value.floats.allSatisfy({ $0 == 0 }) && !name.hasSuffix("bias") {
            var random = RandomStream(seed: seed, stream: RandomStream.streamID("perturb." + name))
            out[name] = HostTensor(shape: value.shape, floats: random.normal(value.elementCount, std: 0.05))
        }
        return out
    }

    func testTinySiTWithIGAndCFG() throws {
        let model = try DiffusionTransformer(ModelConfig(backbone: .sit, inputSize: 8, inChannels: 4, learnSigma: false,
                                                         patch: 2, hidden: 32, depth: 2, heads: 2, numClasses: 10, igLayer: 1))
        let guidance = GuidanceSettings(mode: .igCfg, weight: 1.4, cfgScale: 1.35, cfgInterval: NoiseInterval(lo: 0, hi: 0.7))
        let doubled = try samplerStepGraph(model: model, batch: 2, guidance: guidance, cfg: true)
        let plain = try samplerStepGraph(model: model, batch: 2, guidance: guidance, cfg: false)
        let parameters = perturbed(ParameterInitializer.initialize(doubled, seed: 1), seed: 2)
        let runner = ReferenceStepRunner(plain: plain, doubled: doubled, parameters: parameters, threads: 2)
        let loop = try SamplerLoop(settings: SamplerSettings(kind: .euler, steps: 3, objective: .flowRepa),
                                   guidance: guidance, sampleShape: [4, 8, 8])
        var cfgSteps = 0
        let x = try loop.sample(runner: runner, labels: [3, 7], seed: 5) { if $0.cfg { cfgSteps += 1 } }
        XCTAssertEqual(x.shape, [2, 4, 8, 8])
        XCTAssert(x.floats.allSatisfy { $0.isFinite })
        XCTAssertEqual(cfgSteps, 2)  // σ = 1 is outside [0, 0.7]; 2/3 and 1/3 are inside
        // IG changes the result.
        let unguidedLoop = try SamplerLoop(settings: loop.settings, guidance: .unguided, sampleShape: [4, 8, 8])
        let unguided = try unguidedLoop.sample(runner: ReferenceStepRunner(model: model, batch: 2, guidance: .unguided,
                                                                           parameters: parameters, threads: 2),
                                               labels: [3, 7], seed: 5)
        XCTAssertGreaterThan(zip(x.floats, unguided.floats).map { Swift.abs($0 - $1) }.max()!, 1e-4)
    }

    func testTinyDiTLearnedVarianceDDPM() throws {
        let model = try DiffusionTransformer(ModelConfig(backbone: .dit, inputSize: 8, inChannels: 4, learnSigma: true,
                                                         patch: 4, hidden: 32, depth: 1, heads: 2, numClasses: 10))
        let guidance = GuidanceSettings(mode: .cfg, cfgScale: 4, cfgChannels: 3)
        let settings = SamplerSettings(kind: .ddpm, steps: 3, objective: .ddpmEps, ddpmVariance: .learned)
        let probe = try samplerStepGraph(model: model, batch: 2, guidance: guidance, cfg: true, learnedVariance: true)
        let runner = try ReferenceStepRunner(model: model, batch: 2, guidance: guidance, learnedVariance: true,
                                             parameters: perturbed(ParameterInitializer.initialize(probe, seed: 3), seed: 4),
                                             threads: 2)
        let x = try SamplerLoop(settings: settings, guidance: guidance, sampleShape: [4, 8, 8])
            .sample(runner: runner, labels: [0, 9], seed: 1)
        XCTAssertEqual(x.shape, [2, 4, 8, 8])
        XCTAssert(x.floats.allSatisfy { $0.isFinite })
    }
}
