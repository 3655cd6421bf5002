import Foundation
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport

/// A Double tensor of the naive reference.
struct NaiveTensor {
    var shape: [Int]
    var values: [Double]

    var host: HostTensor { HostTensor(shape: shape, floats: values.map { Float($0) }) }
}

/// Objectives, losses and the golden-file writer (Docs/conventions.md §5), on top of `NaiveTransformer`.
enum NaiveGolden {
    struct Inputs {
        var x0: [Float]
        var eps: [Float]
        var t: [Float]
        var y: [Int64]
    }

    /// Names of the derived tensors, in the order they are written.
    static let derivedNames = ["xt", "target", "out_final", "out_inter", "loss_final", "loss_inter", "loss"]

    /// x0, ε ~ N(0, 1); t spread over the objective's range (both ends included for batch ≥ 2);
    /// y[0] = the null label, the others random classes.
    static func randomInputs(_ c: NaiveConfig, rng: inout NaiveRNG) -> Inputs {
        let count = c.batch * c.inChannels * c.inputSize * c.inputSize
        let x0 = (0..<count).map { _ in Float(rng.normal()) }
        let eps = (0..<count).map { _ in Float(rng.normal()) }
        let t: [Float] = (0..<c.batch).map { n in
            if c.objective == .ddpmEps {
                return Float(n == 0 ? 999 : (n == 1 ? 0 : rng.int(below: 1000)))
            }
            return Float(n == 0 ? 0.98 : (n == 1 ? 0.02 : rng.uniform(0.02, 0.98)))
        }
        let y: [Int64] = (0..<c.batch).map { n in Int64(n == 0 ? c.numClasses : rng.int(below: c.numClasses)) }
        return Inputs(x0: x0, eps: eps, t: t, y: y)
    }

    /// Everything a golden file derives from parameters and inputs: `xt`, `target` (flow),
    /// `out_final`, `out_inter` (IG), `loss_final` (flow or IG), `loss_inter` (IG), `loss`.
    static func evaluate(_ c: NaiveConfig, parameters: [String: HostTensor], inputs: Inputs) -> [String: NaiveTensor] {
        let pixels = c.inChannels * c.inputSize * c.inputSize
        let x0 = inputs.x0.map(Double.init), eps = inputs.eps.map(Double.init), t = inputs.t.map(Double.init)
        var xt = [Double](repeating: 0, count: x0.count)
        var target = eps
        for n in 0..<c.batch {
            for i in (n * pixels)..<((n + 1) * pixels) {
                switch c.objective {
                case .ddpmEps:
                    let alphaBar = Naive.alphaBar(step: Int(t[n]))
                    xt[i] = alphaBar.squareRoot() * x0[i] + (1 - alphaBar).squareRoot() * eps[i]
                case .flowRepa:
                    xt[i] = (1 - t[n]) * x0[i] + t[n] * eps[i]
                    target[i] = eps[i] - x0[i]
                case .flowSit:
                    xt[i] = t[n] * x0[i] + (1 - t[n]) * eps[i]
                    target[i] = x0[i] - eps[i]
                }
            }
        }
        let model = NaiveTransformer(config: c, parameters: parameters)
        let (final, inter) = model.forward(x: xt, t: t, y: inputs.y.map { Int($0) })

        let imageShape = [c.batch, c.inChannels, c.inputSize, c.inputSize]
        let outShape = [c.batch, c.outChannels, c.inputSize, c.inputSize]
        var result: [String: NaiveTensor] = [
            "xt": NaiveTensor(shape: imageShape, values: xt),
            "out_final": NaiveTensor(shape: outShape, values: final),
        ]
        let lossFinal = meanSquaredError(firstChannels(final, c), target)
        var loss = lossFinal
        if c.objective != .ddpmEps {
            result["target"] = NaiveTensor(shape: imageShape, values: target)
        }
        if c.objective != .ddpmEps || inter != nil {
            result["loss_final"] = NaiveTensor(shape: [], values: [lossFinal])
        }
        if let inter {
            let lossInter = meanSquaredError(firstChannels(inter, c), target)
            result["out_inter"] = NaiveTensor(shape: outShape, values: inter)
            result["loss_inter"] = NaiveTensor(shape: [], values: [lossInter])
            loss += c.igLambda * lossInter
        }
        if c.cosineLoss { loss += cosineLoss(firstChannels(final, c), target, c) }
        result["loss"] = NaiveTensor(shape: [], values: [loss])
        return result
    }

    /// The prediction's first `in_channels` channels ([N, C_out, H, W] → [N, C, H, W]).
    static func firstChannels(_ x: [Double], _ c: NaiveConfig) -> [Double] {
        let plane = c.inputSize * c.inputSize
        var y: [Double] = []
        for n in 0..<c.batch {
            let start = n * c.outChannels * plane
            y += x[start..<(start + c.inChannels * plane)]
        }
        return y
    }

    /// Mean over every element (= batch mean of per-sample MSE, as all samples have equal size).
    static func meanSquaredError(_ a: [Double], _ b: [Double]) -> Double {
        var sum = 0.0
        for (x, y) in zip(a, b) { sum += (x - y) * (x - y) }
        return sum / Double(a.count)
    }

    /// `mean over batch and pixels of (1 − cos_sim over channels(a, b))`, guard `max(‖a‖‖b‖, 1e-8)`.
    static func cosineLoss(_ a: [Double], _ b: [Double], _ c: NaiveConfig) -> Double {
        let plane = c.inputSize * c.inputSize
        var total = 0.0
        for n in 0..<c.batch {
            for pixel in 0..<plane {
                var dot = 0.0, aa = 0.0, bb = 0.0
                for ch in 0..<c.inChannels {
                    let i = (n * c.inChannels + ch) * plane + pixel
                    dot += a[i] * b[i]
                    aa += a[i] * a[i]
                    bb += b[i] * b[i]
                }
                total += 1 - dot / max(aa.squareRoot() * bb.squareRoot(), 1e-8)
            }
        }
        return total / Double(c.batch * plane)
    }

    /// Random parameters and inputs for `c` (seeded by `c.seed`), evaluated, as golden-file tensors.
    static func make(_ c: NaiveConfig) -> (tensors: [(String, HostTensor)], metadata: [String: String]) {
        var rng = NaiveRNG(seed: c.seed)
        let parameters = NaiveTransformer.randomParameters(c, rng: &rng)
        let inputs = randomInputs(c, rng: &rng)
        let derived = evaluate(c, parameters: parameters, inputs: inputs)
        var tensors: [(String, HostTensor)] = parameters.sorted { $0.key < $1.key }.map { (Naming.goldenParameterPrefix + $0.key, $0.value) }
        let imageShape = [c.batch, c.inChannels, c.inputSize, c.inputSize]
        tensors.append(("x0", HostTensor(shape: imageShape, floats: inputs.x0)))
        tensors.append(("eps", HostTensor(shape: imageShape, floats: inputs.eps)))
        tensors.append(("t", HostTensor(shape: [c.batch], floats: inputs.t)))
        tensors.append(("y", HostTensor(shape: [c.batch], ints: inputs.y)))
        for name in derivedNames {
            if let tensor = derived[name] { tensors.append((name, tensor.host)) }
        }
        return (tensors, ["config": c.json, "seed": "\(c.seed)"])
    }

    /// Writes a golden-format file for `c` to `path`.
    static func write(_ c: NaiveConfig, to path: String) throws {
        let (tensors, metadata) = make(c)
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }

    /// Recomputes a golden file's derived tensors with the naive reference, from the file's own
    /// config, parameters and inputs.
    static func recompute(_ file: SafeTensorsFile) throws -> (config: NaiveConfig, derived: [String: NaiveTensor]) {
        struct Bad: Error, CustomStringConvertible { var description: String }
        guard let json = file.metadata["config"], let x0 = file.tensors["x0"], let eps = file.tensors["eps"],
              let t = file.tensors["t"], let y = file.tensors["y"] else {
            throw Bad(description: "\(file.source): not a golden file")
        }
        let config = try NaiveConfig(json: json, batch: x0.shape[0])
        var parameters: [String: HostTensor] = [:]
        for (name, tensor) in file.tensors where name.hasPrefix(Naming.goldenParameterPrefix) {
            parameters[String(name.dropFirst(Naming.goldenParameterPrefix.count))] = tensor
        }
        let inputs = Inputs(x0: x0.floats, eps: eps.floats, t: t.floats, y: y.ints)
        return (config, evaluate(config, parameters: parameters, inputs: inputs))
    }
}
