import Foundation
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// The step graph's `x_next` equals the unfused formulas, computed here in double from fake networks
/// whose heads are known closed forms, for every guidance mode.
final class GuidanceCompositionTests: XCTestCase {
    let batch = 3, shape = [4, 2, 2], classes = 5
    let labels: [Int64] = [0, 2, 4]

    // Closed forms of the fake heads.
    static func finalHead(_ x: Double, _ t: Double, _ y: Double) -> Double { sin(x) * (1 + 0.1 * y) + 0.3 * t }
    static func interHead(_ x: Double, _ t: Double, _ y: Double) -> Double { 0.5 * cos(x) - 0.05 * y + 0.2 * t * x }
    static let guideScale = 1.3
    static func guideHead(_ x: Double, _ t: Double, _ y: Double) -> Double { guideScale * 0.8 * x + 0.1 * y - 0.1 * t }

    static func labelsAsFloat(_ b: GraphBuilder, _ y: Tensor) -> Tensor { y.cast(.f32).reshape([y.shape[0], 1, 1, 1]) }

    let network: StepNetwork = { b, x, t, y in
        let yf = GuidanceCompositionTests.labelsAsFloat(b, y), tt = t.reshape([t.shape[0], 1, 1, 1])
        let final = x.sin() * (1 + yf * 0.1) + tt * 0.3
        let inter = x.cos() * 0.5 - yf * 0.05 + tt * x * 0.2
        return (final, inter)
    }
    let guideNetwork: StepNetwork = { b, x, t, y in
        let scale = b.parameter("scale", [1], initializer: .ones).reshape([1, 1, 1, 1])
        let yf = GuidanceCompositionTests.labelsAsFloat(b, y), tt = t.reshape([t.shape[0], 1, 1, 1])
        return (scale * x * 0.8 + yf * 0.1 - tt * 0.1, nil)
    }

    func randomInputs(coefficients: StepCoefficients) -> [String: HostTensor] {
        var random = RandomStream(seed: 7, stream: 1)
        let count = batch * shape.reduce(1, *)
        func image() -> HostTensor { HostTensor(shape: [batch] + shape, floats: random.normal(count)) }
        return ["x": image(), "z": image(), "anchor": image(),
                "t": HostTensor(shape: [batch], floats: [0.2, 0.5, 0.9]),
                "y": HostTensor(shape: [batch], ints: labels),
                "coef": HostTensor(shape: [StepCoefficients.count], floats: coefficients.values)]
    }

    /// The unfused guided denoiser D at one element.
    func expectedGuided(_ mode: GuidanceMode, cfg: Bool, channels: Int?, w: Double, s: Double,
                        x: Double, t: Double, y: Double, channel: Int) -> Double {
        func inner(_ label: Double) -> Double {
            let f = Self.finalHead(x, t, label)
            switch mode {
            case .ig, .igCfg: let i = Self.interHead(x, t, label); return i + w * (f - i)
            case .autoguidance, .autoguidanceCfg: let g = Self.guideHead(x, t, label); return g + w * (f - g)
            case .none, .cfg: return f
            }
        }
        let conditional = inner(y)
        guard cfg, channel < (channels ?? shape[0]) else { return conditional }
        let unconditional = inner(Double(classes))
        return unconditional + s * (conditional - unconditional)
    }

    func check(_ mode: GuidanceMode, cfg: Bool, channels: Int?, w: Double, s: Double) throws {
        let guidance = GuidanceSettings(mode: mode, weight: w, cfgScale: s, cfgChannels: channels)
        let graph = try samplerStepGraph(batch: batch, sampleShape: shape, numClasses: classes, guidance: guidance,
                                         cfg: cfg, network: network,
                                         guideNetwork: mode.usesGuideNetwork ? guideNetwork : nil)
        let c = StepCoefficients(weight: w, cfgScale: s, cx: 0.9, cd: -0.35, cz: 0.12, ca: 0.4)
        let inputs = randomInputs(coefficients: c)
        var parameters: [String: HostTensor] = [:]
        if mode.usesGuideNetwork { parameters["guide.scale"] = HostTensor(shape: [1], floats: [Float(Self.guideScale)]) }
        let out = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: parameters)
        let plane = shape[1] * shape[2], perSample = shape.reduce(1, *)
        let name = "\(mode.rawValue) cfg \(cfg) channels \(channels.map(String.init) ?? "all") w \(w) s \(s)"
        for index in 0..<(batch * perSample) {
            let n = index / perSample, channel = (index % perSample) / plane
            let x = Double(inputs["x"]!.floats[index])
            let d = expectedGuided(mode, cfg: cfg, channels: channels, w: w, s: s, x: x,
                                   t: Double(inputs["t"]!.floats[n]), y: Double(labels[n]), channel: channel)
            let next = c.cx * x + c.cd * d + c.cz * Double(inputs["z"]!.floats[index])
                + c.ca * Double(inputs["anchor"]!.floats[index])
            XCTAssertEqual(Double(out["x_next"]!.floats[index]), next, accuracy: 2e-6 * Swift.max(1, Swift.abs(next)), "\(name) x_next[\(index)]")
        }
    }

    func testEveryModeMatchesTheUnfusedFormula() throws {
        for mode in GuidanceMode.allCases {
            for cfg in mode.usesCFG ? [true, false] : [false] {
                for channels in [nil, 3] as [Int?] {
                    // Inside the intervals, and outside (the host passes w = 1 / the undoubled graph).
                    try check(mode, cfg: cfg, channels: channels, w: 1.7, s: 2.5)
                    try check(mode, cfg: cfg, channels: channels, w: 1, s: 1)
                }
            }
        }
    }

    func testOutsideTheIntervalsTheStepIsUnguided() throws {
        // w = 1 and the undoubled graph give D = F_c for every mode.
        for mode in GuidanceMode.allCases {
            let guidance = GuidanceSettings(mode: mode, weight: 2, cfgScale: 3)
            let graph = try samplerStepGraph(batch: batch, sampleShape: shape, numClasses: classes, guidance: guidance,
                                             cfg: false, network: network,
                                             guideNetwork: mode.usesGuideNetwork ? guideNetwork : nil)
            let inputs = randomInputs(coefficients: StepCoefficients(weight: 1, cfgScale: 3, cd: 1))
            let params = mode.usesGuideNetwork ? ["guide.scale": HostTensor(shape: [1], floats: [1.3])] : [:]
            let out = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: params)
            let perSample = shape.reduce(1, *)
            for index in 0..<(batch * perSample) {
                let n = index / perSample
                let f = Self.finalHead(Double(inputs["x"]!.floats[index]), Double(inputs["t"]!.floats[n]), Double(labels[n]))
                XCTAssertEqual(Double(out["x_next"]!.floats[index]), f, accuracy: 2e-6, "\(mode.rawValue)")
            }
        }
    }

    func testLearnedVarianceTail() throws {
        // C = 2, C_out = 4: the last two channels are v = 0.9·tanh(x); CFG guides them too.
        let shape = [2, 2, 2]
        let network: StepNetwork = { b, x, t, y in
            let yf = GuidanceCompositionTests.labelsAsFloat(b, y)
            return (concat([x.sin() + yf * 0.1, (x + yf * 0.05).tanh() * 0.9], axis: 1), nil)
        }
        let guidance = GuidanceSettings(mode: .cfg, cfgScale: 1.5)
        let graph = try samplerStepGraph(batch: batch, sampleShape: shape, numClasses: classes, guidance: guidance,
                                         cfg: true, learnedVariance: true, network: network)
        let c = StepCoefficients(weight: 1, cfgScale: 1.5, cx: 1.01, cd: -0.2, cVar: 1, logBeta: log(0.02), logBetaTilde: log(0.015))
        var random = RandomStream(seed: 9, stream: 2)
        let count = batch * 8
        let x = random.normal(count), z = random.normal(count)
        let zeros = [Float](repeating: 0, count: count)
        let inputs: [String: HostTensor] = [
            "x": HostTensor(shape: [batch] + shape, floats: x), "z": HostTensor(shape: [batch] + shape, floats: z),
            "anchor": HostTensor(shape: [batch] + shape, floats: zeros),
            "t": HostTensor(shape: [batch], floats: [500, 500, 500]), "y": HostTensor(shape: [batch], ints: labels),
            "coef": HostTensor(shape: [StepCoefficients.count], floats: c.values)]
        let out = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])
        XCTAssertEqual(out["x_next"]!.shape, [batch] + shape)
        for n in 0..<batch {
            for p in 0..<8 {
                let index = n * 8 + p, xv = Double(x[index])
                let (yc, yu) = (Double(labels[n]), Double(classes))
                let eps = sin(xv) + 0.1 * yu + 1.5 * ((sin(xv) + 0.1 * yc) - (sin(xv) + 0.1 * yu))
                let vu = 0.9 * tanh(xv + 0.05 * yu), vc = 0.9 * tanh(xv + 0.05 * yc)
                let v = vu + 1.5 * (vc - vu)
                let f = (v + 1) / 2
                let logVariance = f * log(0.02) + (1 - f) * log(0.015)
                let expected = 1.01 * xv - 0.2 * eps + exp(0.5 * logVariance) * Double(z[index])
                XCTAssertEqual(Double(out["x_next"]!.floats[index]), expected, accuracy: 2e-6, "x_next[\(index)]")
            }
        }
    }

    func testMisuseIsReported() throws {
        let noInter: StepNetwork = { _, x, _, _ in (x, nil) }
        XCTAssertThrowsError(try samplerStepGraph(batch: 1, sampleShape: shape, numClasses: classes,
                                                  guidance: GuidanceSettings(mode: .ig, weight: 2), cfg: false, network: noInter))
        XCTAssertThrowsError(try samplerStepGraph(batch: 1, sampleShape: shape, numClasses: classes,
                                                  guidance: .unguided, cfg: true, network: noInter))
        XCTAssertThrowsError(try samplerStepGraph(batch: 1, sampleShape: shape, numClasses: classes,
                                                  guidance: GuidanceSettings(mode: .autoguidance), cfg: false, network: noInter))
        XCTAssertThrowsError(try samplerStepGraph(batch: 1, sampleShape: shape, numClasses: classes,
                                                  guidance: .unguided, cfg: false, learnedVariance: true, network: noInter))
        let graph = try samplerStepGraph(batch: 1, sampleShape: shape, numClasses: classes,
                                         guidance: GuidanceSettings(mode: .autoguidance), cfg: false,
                                         network: network, guideNetwork: guideNetwork)
        XCTAssertEqual(graph.parameterNodes.count, 1)
        XCTAssertEqual(graph.parameterNodes.first.map { node -> String in
            if case .parameter(let name, _, _) = node.op { return name } else { return "" }
        }, "guide.scale")
    }
}
