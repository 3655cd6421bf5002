import Foundation
import LoomCompiler
import LoomData
@testable import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// The variational-bound term of the hybrid loss (learn_sigma DDPM) against a plain Double
/// implementation written straight from the ADM/DiT formulas, and its wiring into `lossGraph`.
final class HybridLossTests: XCTestCase {
    // MARK: - Independent Double reference

    /// Linear-β DDPM schedule, 1000 steps, in Double — recomputed here, not taken from `DDPMSchedule`.
    private struct NaiveSchedule {
        let betas: [Double]
        let alphaBar: [Double]

        init(steps: Int = 1000) {
            betas = (0..<steps).map { 1e-4 + (0.02 - 1e-4) * Double($0) / Double(steps - 1) }
            var product = 1.0
            alphaBar = betas.map { product *= 1 - $0; return product }
        }

        func alphaBarPrev(_ t: Int) -> Double { t == 0 ? 1 : alphaBar[t - 1] }
        func posteriorVariance(_ t: Int) -> Double { betas[t] * (1 - alphaBarPrev(t)) / (1 - alphaBar[t]) }
        func posteriorLogVarianceClipped(_ t: Int) -> Double { log(posteriorVariance(t == 0 ? 1 : t)) }
    }

    private static func approxCDF(_ x: Double) -> Double {
        0.5 * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    }

    private static func discretizedLogLikelihood(x: Double, mean: Double, logScale: Double) -> Double {
        let centered = x - mean, invStd = exp(-logScale)
        let cdfPlus = approxCDF(invStd * (centered + 1.0 / 255.0))
        let cdfMin = approxCDF(invStd * (centered - 1.0 / 255.0))
        if x < -0.999 { return log(max(cdfPlus, 1e-12)) }
        if x > 0.999 { return log(max(1 - cdfMin, 1e-12)) }
        return log(max(cdfPlus - cdfMin, 1e-12))
    }

    /// Per-sample VB term in bits. output: [N, 2C, H, W]; x0, xt: [N, C, H, W].
    private static func naiveVB(output: [Float], x0: [Float], xt: [Float], steps: [Int],
                                channels c: Int, pixels: Int) -> [Double] {
        let s = NaiveSchedule()
        return steps.enumerated().map { n, t in
            let ab = s.alphaBar[t], abPrev = s.alphaBarPrev(t), beta = s.betas[t]
            let coef1 = beta * abPrev.squareRoot() / (1 - ab)
            let coef2 = (1 - abPrev) * (1 - beta).squareRoot() / (1 - ab)
            let minLog = s.posteriorLogVarianceClipped(t), maxLog = log(beta)
            var total = 0.0
            for ch in 0..<c {
                for p in 0..<pixels {
                    let i = (n * c + ch) * pixels + p
                    let epsHat = Double(output[(n * 2 * c + ch) * pixels + p])
                    let v = Double(output[(n * 2 * c + c + ch) * pixels + p])
                    let x = Double(x0[i]), y = Double(xt[i])
                    let predX0 = (1 / ab).squareRoot() * y - (1 / ab - 1).squareRoot() * epsHat
                    let modelMean = coef1 * predX0 + coef2 * y
                    let trueMean = coef1 * x + coef2 * y
                    let frac = (v + 1) / 2
                    let modelLogVar = frac * maxLog + (1 - frac) * minLog
                    if t == 0 {
                        total -= discretizedLogLikelihood(x: x, mean: modelMean, logScale: 0.5 * modelLogVar)
                    } else {
                        total += 0.5 * (-1 + modelLogVar - minLog + exp(minLog - modelLogVar)
                                        + (trueMean - modelMean) * (trueMean - modelMean) * exp(-modelLogVar))
                    }
                }
            }
            return total / Double(c * pixels) / log(2.0)
        }
    }

    // MARK: - Random inputs

    /// x0 spread over [−1, 1] with the bin edges and the open outer bins represented: exact ±1,
    /// ±0.9995 (outer branches), ±0.998 (inner), 8-bit grid values, and uniform values.
    private static func spreadX0(_ count: Int, _ rng: inout SplitMix64) -> [Float] {
        let special: [Double] = [-1, 1, -0.9995, 0.9995, -0.998, 0.998, 0, -0.5, 0.5]
        return (0..<count).map { i in
            if i % 5 == 0 { return Float(special[(i / 5) % special.count]) }
            if i % 5 == 1 { return Float(Double(Int(rng.unit() * 256)) / 127.5 - 1) }
            return Float(rng.uniform(-1, 1))
        }
    }

    private struct Case {
        var output: [Float], x0: [Float], xt: [Float]
    }

    /// xt from the forward process, ε̂ = ε + 0.5·noise, v uniform in [−1.2, 1.2].
    private static func makeCase(steps: [Int], c: Int, pixels: Int, seed: UInt64) -> Case {
        var rng = SplitMix64(state: seed)
        let s = NaiveSchedule()
        let n = steps.count
        let x0 = spreadX0(n * c * pixels, &rng)
        var xt = [Float](repeating: 0, count: n * c * pixels)
        var output = [Float](repeating: 0, count: n * 2 * c * pixels)
        for sample in 0..<n {
            let ab = s.alphaBar[steps[sample]]
            for ch in 0..<c {
                for p in 0..<pixels {
                    let i = (sample * c + ch) * pixels + p
                    let eps = rng.normal()
                    xt[i] = Float(ab.squareRoot() * Double(x0[i]) + (1 - ab).squareRoot() * eps)
                    output[(sample * 2 * c + ch) * pixels + p] = Float(eps + 0.5 * rng.normal())
                    output[(sample * 2 * c + c + ch) * pixels + p] = Float(rng.uniform(-1.2, 1.2))
                }
            }
        }
        return Case(output: output, x0: x0, xt: xt)
    }

    /// A graph holding only the VB term: inputs `output`, `x0`, `xt`, `coef`; output `vb`.
    private static func vbGraph(batch n: Int, c: Int, size: Int) throws -> Graph {
        let b = GraphBuilder(name: "vb_term")
        let output = b.input("output", TensorType(.f32, [n, 2 * c, size, size]))
        let x0 = b.input("x0", TensorType(.f32, [n, c, size, size]))
        let xt = b.input("xt", TensorType(.f32, [n, c, size, size]))
        let coef = b.input("coef", TensorType(.f32, [n, DDPMSchedule.vbColumns]))
        b.output("vb", variationalBoundTerm(output: output, x0: x0, xt: xt, coef: coef, inChannels: c))
        return try b.build()
    }

    private static func relativeError(_ a: Double, _ b: Double) -> Double {
        abs(a - b) / max(abs(b), 1e-12)
    }

    // MARK: - Tests

    func testCoefficientTableMatchesFormulas() throws {
        let schedule = DDPMSchedule(), s = NaiveSchedule()
        let steps = [0, 1, 2, 500, 998, 999]
        let table = try schedule.variationalBoundCoefficients(steps.map(Float.init))
        XCTAssertEqual(table.count, steps.count * DDPMSchedule.vbColumns)
        for (row, t) in steps.enumerated() {
            let ab = s.alphaBar[t], abPrev = s.alphaBarPrev(t), beta = s.betas[t]
            let expected: [Double] = [
                (1 / ab).squareRoot(), (1 / ab - 1).squareRoot(),
                beta * abPrev.squareRoot() / (1 - ab), (1 - abPrev) * (1 - beta).squareRoot() / (1 - ab),
                s.posteriorLogVarianceClipped(t), log(beta) - s.posteriorLogVarianceClipped(t),
                t == 0 ? 1 : 0,
            ]
            for (col, value) in expected.enumerated() {
                let got = Double(table[row * DDPMSchedule.vbColumns + col])
                XCTAssertEqual(got, value, accuracy: 1e-6 * max(1, abs(value)), "t \(t) column \(col)")
            }
            XCTAssertGreaterThan(Double(table[row * DDPMSchedule.vbColumns + 5]), 0, "t \(t): log β_t > log β̃_t")
        }
        // t = 0 uses t = 1's posterior log-variance.
        XCTAssertEqual(table[4], table[DDPMSchedule.vbColumns + 4])
        for bad: Float in [-1, 1000, 0.5, .nan] {
            XCTAssertThrowsError(try schedule.variationalBoundCoefficients([3, bad]), "t = \(bad)")
        }
    }

    /// The graph's VB term for one batch with these per-sample steps, against the double-precision
    /// reference (per sample and their mean).
    private func vbAgainstReference(steps: [Int], c: Int, size: Int, seed: UInt64) throws
        -> (got: Double, expected: Double, perSample: [Double]) {
        let n = steps.count, pixels = size * size
        let graph = try Self.vbGraph(batch: n, c: c, size: size)
        let data = Self.makeCase(steps: steps, c: c, pixels: pixels, seed: seed)
        let coef = try DDPMSchedule().variationalBoundCoefficients(steps.map(Float.init))
        let result = try ReferenceExecutor(threads: 1).run(graph, inputs: [
            "output": HostTensor(shape: [n, 2 * c, size, size], floats: data.output),
            "x0": HostTensor(shape: [n, c, size, size], floats: data.x0),
            "xt": HostTensor(shape: [n, c, size, size], floats: data.xt),
            "coef": HostTensor(shape: [n, DDPMSchedule.vbColumns], floats: coef),
        ], parameters: [:])
        let got = Double(try XCTUnwrap(result["vb"]).floats[0])
        let perSample = Self.naiveVB(output: data.output, x0: data.x0, xt: data.xt, steps: steps,
                                     channels: c, pixels: pixels)
        return (got, perSample.reduce(0, +) / Double(n), perSample)
    }

    func testVBTermMatchesDoubleReferenceAtEachStep() throws {
        for (index, t) in [0, 1, 2, 10, 250, 500, 998, 999].enumerated() {
            let (got, expected, _) = try vbAgainstReference(steps: [Int](repeating: t, count: 3), c: 2, size: 4,
                                                            seed: 0xB0B + UInt64(index))
            XCTAssertTrue(got.isFinite && expected > 0, "t \(t): graph \(got), reference \(expected)")
            XCTAssertLessThanOrEqual(Self.relativeError(got, expected), 1e-4,
                                     "t \(t): graph \(got), reference \(expected)")
        }
    }

    func testVBTermMixedBatchSelectsPerSample() throws {
        let (got, expected, perSample) = try vbAgainstReference(steps: [0, 1, 500, 999, 0], c: 3, size: 4, seed: 42)
        XCTAssertLessThanOrEqual(Self.relativeError(got, expected), 1e-4, "graph \(got), reference \(expected)")
        // The t = 0 samples (decoder NLL) and the KL samples are on very different scales; both count.
        XCTAssertGreaterThan(perSample[0], 0)
        XCTAssertGreaterThan(perSample[2], 0)
    }

    // MARK: - lossGraph wiring and gradients

    private static let tinyDiT = ModelConfig(backbone: .dit, inputSize: 8, inChannels: 4, learnSigma: true, patch: 2,
                                             hidden: 32, depth: 1, heads: 2, numClasses: 10)

    /// Initialised parameters with the zero-initialised tensors (adaLN, final layer, biases)
    /// replaced by small random values so every output channel is non-trivial.
    private static func parameters(_ graph: Graph) -> [String: HostTensor] {
        var params = ParameterInitializer.initialize(graph, seed: 11)
        var rng = SplitMix64(state: 0xFACE)
        for name in params.keys.sorted() where params[name]!.floats.allSatisfy({ $0 == 0 }) {
            params[name]!.floats = params[name]!.floats.map { _ in Float(0.1 * rng.normal()) }
        }
        return params
    }

    private static func lossInputs(batch n: Int, steps: [Int]) throws -> [String: HostTensor] {
        let c = tinyDiT.inChannels, s = tinyDiT.inputSize, count = n * c * s * s
        var rng = SplitMix64(state: 0xD17)
        let t = steps.map(Float.init)
        let schedule = DDPMSchedule()
        return [
            "x0": HostTensor(shape: [n, c, s, s], floats: spreadX0(count, &rng)),
            "eps": HostTensor(shape: [n, c, s, s], floats: (0..<count).map { _ in Float(rng.normal()) }),
            "t": HostTensor(shape: [n], floats: t),
            "y": HostTensor(shape: [n], ints: (0..<n).map { Int64($0 * 3 % 11) }),
            "ddpm_coef": HostTensor(shape: [n, 2], floats: try schedule.noisingCoefficients(t)),
            "ddpm_vb_coef": HostTensor(shape: [n, DDPMSchedule.vbColumns],
                                       floats: try schedule.variationalBoundCoefficients(t)),
        ]
    }

    func testLossGraphAddsVBTerm() throws {
        let model = try DiffusionTransformer(Self.tinyDiT)
        let steps = [0, 1, 500, 999]
        let graph = try objectiveGraph(model, batch: steps.count, settings: LossSettings(objective: .ddpmEps, vbLoss: true))
        XCTAssertTrue(graph.inputNodes.contains { $0.op == .input(name: "ddpm_vb_coef") })
        let inputs = try Self.lossInputs(batch: steps.count, steps: steps)
        let out = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: Self.parameters(graph))
        let loss = Double(try XCTUnwrap(out["loss"]).floats[0])
        let lossFinal = Double(try XCTUnwrap(out["loss_final"]).floats[0])
        let lossVB = Double(try XCTUnwrap(out["loss_vb"]).floats[0])
        XCTAssertTrue(loss.isFinite && lossFinal > 0 && lossVB > 0, "loss \(loss) final \(lossFinal) vb \(lossVB)")
        XCTAssertEqual(loss, lossFinal + lossVB, accuracy: 1e-5 * abs(loss))

        // loss_vb agrees with the Double reference evaluated on the graph's own xt and prediction.
        let prediction = try XCTUnwrap(out["out_final"]).floats
        XCTAssertGreaterThan(prediction.map { abs($0) }.max() ?? 0, 0.05, "non-trivial model output")
        let c = Self.tinyDiT.inChannels, pixels = Self.tinyDiT.inputSize * Self.tinyDiT.inputSize
        let perSample = Self.naiveVB(output: prediction, x0: inputs["x0"]!.floats, xt: try XCTUnwrap(out["xt"]).floats,
                                     steps: steps, channels: c, pixels: pixels)
        let expected = perSample.reduce(0, +) / Double(steps.count)
        XCTAssertLessThanOrEqual(Self.relativeError(lossVB, expected), 1e-4, "graph \(lossVB), reference \(expected)")

        // Without the term: no extra input, no loss_vb, and the same loss_final.
        let plain = try objectiveGraph(model, batch: steps.count, settings: LossSettings(objective: .ddpmEps))
        XCTAssertFalse(plain.outputs.contains { $0.name == "loss_vb" })
        XCTAssertThrowsError(try objectiveGraph(try DiffusionTransformer(ModelConfig(
            backbone: .dit, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2, hidden: 32, depth: 1,
            heads: 2, numClasses: 10)), batch: 2, settings: LossSettings(objective: .ddpmEps, vbLoss: true)))
    }

    func testVBGradientReachesOnlyVarianceChannels() throws {
        let model = try DiffusionTransformer(Self.tinyDiT)
        let steps = [0, 3, 500, 999]
        let graph = try objectiveGraph(model, batch: steps.count, settings: LossSettings(objective: .ddpmEps, vbLoss: true))
        let params = Self.parameters(graph)
        let inputs = try Self.lossInputs(batch: steps.count, steps: steps)
        let targets = ["final_layer.linear.weight", "final_layer.linear.bias"]
        func gradients(_ loss: String) throws -> [String: HostTensor] {
            let g = try Autodiff.differentiate(graph, loss: loss, parameters: targets)
            return try ReferenceExecutor(threads: 1).run(g, inputs: inputs, parameters: params)
        }
        let gVB = try gradients("loss_vb"), gMSE = try gradients("loss_final"), gAll = try gradients("loss")
        let outChannels = Self.tinyDiT.outChannels, c = Self.tinyDiT.inChannels
        for name in targets {
            let key = Naming.gradientPrefix + name
            let vb = try XCTUnwrap(gVB[key]), mse = try XCTUnwrap(gMSE[key]), all = try XCTUnwrap(gAll[key])
            let rowLength = vb.elementCount / vb.shape[0]
            var varianceNorm = 0.0, meanNormMSE = 0.0
            for row in 0..<vb.shape[0] {
                // Output features are laid out (p_row, p_col, channel), channel fastest.
                let isVariance = row % outChannels >= c
                for j in 0..<rowLength {
                    let i = row * rowLength + j
                    let (gv, gm, ga) = (Double(vb.floats[i]), Double(mse.floats[i]), Double(all.floats[i]))
                    if isVariance {
                        varianceNorm += gv * gv
                        XCTAssertEqual(gm, 0, "\(name)[\(row), \(j)]: the MSE term does not see the variance")
                        XCTAssertEqual(ga, gv, accuracy: 1e-5 * max(1, abs(gv)), "\(name)[\(row), \(j)]")
                    } else {
                        meanNormMSE += gm * gm
                        XCTAssertEqual(gv, 0, "\(name)[\(row), \(j)]: ε̂ is held fixed in the VB term")
                        XCTAssertEqual(ga, gm, accuracy: 1e-5 * max(1, abs(gm)), "\(name)[\(row), \(j)]")
                    }
                }
            }
            XCTAssertGreaterThan(varianceNorm, 1e-12, "\(name): the VB term trains the variance channels")
            XCTAssertGreaterThan(meanNormMSE, 1e-12, "\(name): the MSE trains the ε channels")
        }
    }
}
