import Foundation
import LoomData
import LoomDiffusion
import LoomSampling
import LoomTestSupport
import LoomTraining
import LoomGraphs
import LoomRuntime
import XCTest

/// `loom sample --sampler heun` on a flow_repa model against the official REPA / IG sampler, written
/// here plainly in Double over the naive reference transformer (no Loom graph, plan or loop code):
/// grid `linspace(1, 0, N+1)` in t (t = 1 noise), Euler step `x + (t_next − t_cur)·d`, the Heun
/// corrector only while `i < N − 1` with `x_cur + dt·(½d + ½d′)`, CFG on the doubled batch
/// `[x; x]`, `[y; ∅]` when `t_cur` is in the CFG interval (the corrector keeps that decision), and
/// IG's extrapolation `I + w(F − I)` on each half when `t_cur` is in the IG interval. Loom runs the
/// same noise and labels through `SamplingJob` on compiled plans; the samples agree to 1e-4.
final class OfficialSamplerParityTests: XCTestCase {
    let naive = NaiveConfig(inputSize: 8, inChannels: 3, patch: 2, hidden: 32, depth: 2, heads: 2, numClasses: 5,
                            igLayer: 1, objective: .flowRepa)
    var model: ModelConfig {
        ModelConfig(backbone: .sit, inputSize: 8, inChannels: 3, learnSigma: false, patch: 2, hidden: 32, depth: 2,
                    heads: 2, numClasses: 5, igLayer: 1)
    }

    /// Final and intermediate heads of the naive model on `x` (N samples, flat), time t for all.
    func heads(_ parameters: [String: HostTensor], x: [Double], t: Double, y: [Int]) -> (final: [Double], inter: [Double]) {
        var config = naive
        config.batch = y.count
        let out = NaiveTransformer(config: config, parameters: parameters)
            .forward(x: x, t: [Double](repeating: t, count: y.count), y: y)
        return (out.final, out.inter!)
    }

    /// The official loop: D at (x, t) with the guidance decided at `tDecision`.
    func denoiser(_ parameters: [String: HostTensor], x: [Double], t: Double, tDecision: Double, labels: [Int],
                  w: Double, s: Double, ig: ClosedRange<Double>, cfg: ClosedRange<Double>) -> [Double] {
        let doubled = s > 1 && cfg.contains(tDecision)
        let input = doubled ? x + x : x
        let y = doubled ? labels + [Int](repeating: naive.numClasses, count: labels.count) : labels
        let (f, i) = heads(parameters, x: input, t: t, y: y)
        let useIG = w > 1 && ig.contains(tDecision)
        let v = zip(f, i).map { f, i in useIG ? i + w * (f - i) : f }
        guard doubled else { return v }
        let half = x.count
        return (0..<half).map { k in v[half + k] + s * (v[k] - v[half + k]) }
    }

    func officialHeun(_ parameters: [String: HostTensor], noise: [Double], labels: [Int], steps: Int, w: Double, s: Double,
                      ig: ClosedRange<Double>, cfg: ClosedRange<Double>) -> [Double] {
        let grid = (0...steps).map { 1 - Double($0) / Double(steps) }
        var x = noise
        for i in 0..<steps {
            let (tCur, tNext) = (grid[i], grid[i + 1])
            let d = denoiser(parameters, x: x, t: tCur, tDecision: tCur, labels: labels, w: w, s: s, ig: ig, cfg: cfg)
            let euler = zip(x, d).map { $0 + (tNext - tCur) * $1 }
            guard i < steps - 1 else {
                x = euler
                continue
            }
            let dPrime = denoiser(parameters, x: euler, t: tNext, tDecision: tCur, labels: labels, w: w, s: s, ig: ig, cfg: cfg)
            x = (0..<x.count).map { k in x[k] + (tNext - tCur) * (0.5 * d[k] + 0.5 * dPrime[k]) }
        }
        return x
    }

    func testHeunOnAFlowRepaModelMatchesTheOfficialSampler() throws {
        var rng = NaiveRNG(seed: 11)
        let parameters = NaiveTransformer.randomParameters(naive, rng: &rng)
        let labels: [Int64] = [0, 3, 4]
        let pixels = 3 * 8 * 8
        var stream = RandomStream(seed: 12, stream: 13)
        let noise = HostTensor(shape: [labels.count, 3, 8, 8], floats: stream.normal(labels.count * pixels))
        let steps = 6
        // Intervals that switch each guidance off for part of the run (and a corrector across the edge).
        for (ig, cfg) in [(0.0...1.0, 0.0...1.0), (0.3...1.0, 0.0...0.55)] {
            let guidance = GuidanceSettings(mode: .igCfg, weight: 1.4, cfgScale: 1.8,
                                            igInterval: NoiseInterval(lo: ig.lowerBound, hi: ig.upperBound),
                                            cfgInterval: NoiseInterval(lo: cfg.lowerBound, hi: cfg.upperBound))
            // What `loom sample --sampler heun` builds for a flow_repa checkpoint.
            let job = SamplingJob(model: model, weights: parameters,
                                  sampler: SamplerSettings(kind: .heun, steps: steps, objective: .flowRepa),
                                  guidance: guidance, batch: labels.count, seed: 0, threads: 1)
            let loom = try job.run(labels: labels, initialNoise: noise)
            let official = officialHeun(parameters, noise: noise.floats.map(Double.init), labels: labels.map { Int($0) },
                                        steps: steps, w: 1.4, s: 1.8, ig: ig, cfg: cfg)
            let error = zip(loom.floats, official).map { Swift.abs(Double($0) - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(error, 1e-4, "IG \(ig), CFG \(cfg): max |loom − official|")
            // The comparison can fail: the full correction on the last interval is a different sampler.
            var full = job
            full.sampler.heunLastStepEuler = false
            let other = try full.run(labels: labels, initialNoise: noise)
            let gap = zip(other.floats, official).map { Swift.abs(Double($0) - $1) }.max() ?? 0
            XCTAssertGreaterThan(gap, 1e-3, "IG \(ig), CFG \(cfg): the last-step convention is visible")
            print(String(format: "heun flow_repa IG %@ CFG %@: max |loom − official| %.2e (full last step: %.2e)",
                         "\(ig)", "\(cfg)", error, gap))
        }
    }
}
