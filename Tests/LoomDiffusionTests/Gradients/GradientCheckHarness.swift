import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

// MARK: - Coverage: the op families a gradient check must exist for

/// The op families of Loom's closed op set, as gradient checks name them (the IR mnemonic; a
/// parameter is `param` when trainable and `buffer` otherwise).
enum OpFamilies {
    /// The family of `op` (`OpKinds.kind`, whose exhaustive switch makes a new `Op` case a compile
    /// error until it is placed; then `sampleOps` below, and a gradient check, must follow).
    /// `conv2d` (the VAE's, inference-only) and fused kernels (made after autodiff) have no VJP, so
    /// no gradient check and no place in `sampleOps`: ConvolutionKernelTests and CompiledPlanTests
    /// cover their forwards.
    static func family(_ op: Op) -> String { OpKinds.kind(op) }

    /// One sample of every differentiable case of `Op`, with every unary, binary and reduce function.
    static var sampleOps: [Op] {
        var ops: [Op] = [
            .input(name: "x"),
            .parameter(name: "p", initializer: .zeros, trainable: true),
            .parameter(name: "b", initializer: .zeros, trainable: false),
            .constant(value: 0), .iota(axis: 0), .affine(scale: 1, shift: 0),
            .matmul(transposeA: false, transposeB: false), .softmax, .layerNorm(eps: 1e-6), .rmsNorm(eps: 1e-6),
            .reshape(shape: []), .permute(perm: []), .slice(axis: 0, start: 0, end: 0), .concat(axis: 0),
            .broadcast(shape: []), .gather, .scatterAdd(rows: 1), .patchify(patch: 1),
            .unpatchify(patch: 1, gridH: 1, gridW: 1), .rotatePairs, .cast(to: .f32), .stopGradient,
        ]
        ops += UnaryFunction.allCases.map { Op.unary($0) }
        ops += BinaryFunction.allCases.map { Op.binary($0) }
        ops += ReduceFunction.allCases.map { Op.reduce($0, axes: [], keepDims: false) }
        return ops
    }

    /// Every family that needs a gradient check, in a stable order.
    static var all: [String] {
        var seen: Set<String> = []
        return sampleOps.map(family).filter { seen.insert($0).inserted }
    }
}

// MARK: - Sampling

/// How a tensor's values are drawn. Non-smooth ops are only checked away from their kinks: a
/// central difference with step h straddles a kink only if the value lies within h of it, so every
/// sampler that feeds abs/relu/sign/max/min keeps a gap of ≥ 0.09, thirty times the step.
enum GradientSample {
    /// N(0, std²).
    case normal(std: Float)
    /// U(low, high).
    case uniform(Float, Float)
    /// ±U(low, high) with a random sign (|x| ≥ low: away from the kink of abs/relu/sign, or a
    /// denominator away from zero).
    case awayFromZero(Float, Float)
    /// k·0.3 + offset + U(−0.03, 0.03), k ∈ −5…5. Two lattices with offsets 0 and 0.15 never come
    /// closer than 0.09: operands of max/min, broadcast or not, never tie.
    case lattice(offset: Float)
    /// A shuffled arithmetic sequence with step 0.2 (± 0.02 jitter): pairwise gaps ≥ 0.16, so a
    /// reduce_max has a unique winner in every group, farther than any step from the runner-up.
    case distinct
    /// U(low, high) with fractional part in [0.25, 0.75]: truncation to an integer (cast) is
    /// locally constant.
    case nonInteger(Float, Float)
    /// These exact values.
    case values([Float])

    static let standard = GradientSample.normal(std: 1)
}

/// Deterministic draws for the harness (Philox, via `RandomStream`).
struct HarnessRandom {
    var stream: RandomStream

    init(seed: UInt64, name: String) {
        stream = RandomStream(seed: seed, stream: RandomStream.streamID(name))
    }

    mutating func uniform(_ low: Float = 0, _ high: Float = 1) -> Float { stream.uniform(1, low: low, high: high)[0] }
    mutating func normal(_ count: Int, std: Float = 1) -> [Float] { stream.normal(count, std: std) }
    mutating func int(_ range: Range<Int>) -> Int {
        min(range.upperBound - 1, range.lowerBound + Int(uniform() * Float(range.count)))
    }
    mutating func sign() -> Float { uniform() < 0.5 ? -1 : 1 }
    mutating func shuffled<T>(_ items: [T]) -> [T] {
        var items = items
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, int(0..<(i + 1))) }
        return items
    }

    mutating func draw(_ sample: GradientSample, count: Int) -> [Float] {
        switch sample {
        case .normal(let std): return normal(count, std: std)
        case .uniform(let lo, let hi): return (0..<count).map { _ in uniform(lo, hi) }
        case .awayFromZero(let lo, let hi): return (0..<count).map { _ in sign() * uniform(lo, hi) }
        case .lattice(let offset):
            return (0..<count).map { _ in Float(int(-5..<6)) * 0.3 + offset + uniform(-0.03, 0.03) }
        case .distinct:
            let base = (0..<count).map { Float($0) * 0.2 - Float(count) * 0.1 }
            return shuffled(base).map { $0 + uniform(-0.02, 0.02) }
        case .nonInteger(let lo, let hi):
            return (0..<count).map { _ in
                var v = uniform(lo, hi)
                let frac = v - v.rounded(.down)
                if frac < 0.25 || frac > 0.75 { v = v.rounded(.down) + uniform(0.25, 0.75) }
                return v
            }
        case .values(let v):
            precondition(v.count == count, "GradientSample.values: \(v.count) values for \(count) elements")
            return v
        }
    }
}

// MARK: - Cases

/// Builds one case's forward expression and records the values of its leaves.
final class GradientCaseBuilder {
    let b: GraphBuilder
    var random: HarnessRandom
    private(set) var parameters: [String: HostTensor] = [:]
    private(set) var inputs: [String: HostTensor] = [:]
    /// Trainable parameters in declaration order.
    private(set) var trainable: [String] = []

    init(name: String, seed: UInt64) {
        b = GraphBuilder(name: "gradcheck")
        random = HarnessRandom(seed: seed, name: name)
    }

    /// A trainable parameter (declared with a zero initializer; its values come from `sample`).
    func param(_ name: String, _ shape: [Int], _ sample: GradientSample = .standard) -> Tensor {
        let t = b.parameter(name, shape, initializer: .zeros)
        parameters[name] = HostTensor(shape: shape, floats: random.draw(sample, count: shape.reduce(1, *)))
        trainable.append(name)
        return t
    }

    /// A non-trainable parameter (buffer).
    func buffer(_ name: String, _ shape: [Int], _ sample: GradientSample = .standard) -> Tensor {
        let t = b.parameter(name, shape, initializer: .zeros, trainable: false)
        parameters[name] = HostTensor(shape: shape, floats: random.draw(sample, count: shape.reduce(1, *)))
        return t
    }

    /// A float runtime input.
    func input(_ name: String, _ shape: [Int], _ sample: GradientSample = .standard) -> Tensor {
        inputs[name] = HostTensor(shape: shape, floats: random.draw(sample, count: shape.reduce(1, *)))
        return b.input(name, TensorType(.f32, shape))
    }

    /// An integer runtime input (indices, labels).
    func indices(_ name: String, _ shape: [Int], _ values: [Int64], dtype: DType = .i64) -> Tensor {
        inputs[name] = HostTensor(shape: shape, ints: values, dtype: dtype)
        return b.input(name, TensorType(dtype, shape))
    }
}

/// What the check asserts about one parameter's gradient.
enum GradientExpectation {
    /// Agrees with central finite differences (the default).
    case finiteDifferences
    /// Exactly zero everywhere (e.g. the value reaches the loss only through stop_gradient or
    /// sign). With `fdToo`, the finite differences must vanish as well (the op is locally constant).
    case zero(fdToo: Bool)
    /// Equals a closed form of the parameter values and the loss weights R (for stop_gradient,
    /// whose analytic gradient deliberately differs from the finite differences).
    case closedForm((_ parameters: [String: HostTensor], _ r: HostTensor) -> [Float])
}

/// One gradient check: a forward expression y of trainable parameters; the harness adds
/// loss = Σ y ⊙ R with fixed random weights R, so every element of y matters.
struct GradientCase {
    let name: String
    /// Op families this case is there to check; each must appear in the case's graph.
    let covers: [String]
    var expectations: [String: GradientExpectation] = [:]
    let build: (GradientCaseBuilder) -> Tensor

    init(_ name: String, covers: [String], expectations: [String: GradientExpectation] = [:],
         _ build: @escaping (GradientCaseBuilder) -> Tensor) {
        self.name = name
        self.covers = covers
        self.expectations = expectations
        self.build = build
    }
}

/// The outcome of one case.
struct GradientCaseReport {
    var name: String
    var checkedElements = 0
    /// Largest |fd − analytic| / (atol + rtol·|analytic|) over the checked elements (≤ 1 passes).
    var worstRatio: Double = 0
    var failures: [String] = []
    var familiesInGraph: Set<String> = []
}

// MARK: - The harness

/// Checks Autodiff's gradients against central finite differences on the float32 reference executor.
///
/// Step and tolerance (float32, unit roundoff u = 2⁻²⁴ ≈ 6e-8):
/// - step h = 3e-3·max(1, |p|). The central difference's truncation error is h²/6·|f'''| ≈ 1.5e-6·|f'''|:
///   far below the relative tolerance for every sampled input (the worst, recip at 0.5, has
///   |f'''| = 96, i.e. 1.4e-4 on a derivative of 4). Perturbed values are rounded to float32, so the
///   divisor is the step actually taken, (fl(p+h) − fl(p−h)) / 2.
/// - the loss Σ yᵢRᵢ of the perturbed runs is summed in Double on the host from the float32 outputs
///   y, so the only roundoff left is in y itself: each yᵢ carries a relative error of a few u (κ·u,
///   κ ≲ 8 for these small ops), which moves the difference L₊ − L₋ by at most 2κu·S with
///   S = Σ|yᵢRᵢ|, hence the FD estimate by κu·S/h. That is the absolute tolerance,
///   atol = 8u·S/h + 1e-6 (≈ 1.6e-4·S).
/// - rtol = 2e-2 covers the truncation error and the analytic gradient's own float32 error; a wrong
///   VJP rule is off by O(1) relative (a sign, a factor, a missing term), far outside it.
/// Tensors of more than 40 elements are checked on a random subset of 40 (first and last included).
enum GradientCheckHarness {
    static let relativeStep: Float = 3e-3
    static let rtol: Double = 2e-2
    static let roundoffFactor: Double = 8
    static let unitRoundoff = Double(Float.ulpOfOne) / 2
    static let maxElements = 40
    static let seed: UInt64 = 0x10_0D_6EAD
    static let lossWeights = "harness.R"

    static func step(for value: Float) -> Float { relativeStep * max(1, abs(value)) }

    /// Runs one case. `analyticScale` multiplies the analytic gradient before comparison (1 in real
    /// checks; the self-test sets it off 1 to show the harness catches a wrong gradient).
    static func run(_ gradientCase: GradientCase, analyticScale: Float = 1) throws -> GradientCaseReport {
        var report = GradientCaseReport(name: gradientCase.name)
        func fail(_ message: String) { report.failures.append(message) }

        let (cb, forward) = try buildForward(gradientCase)
        report.familiesInGraph = Set(forward.nodes.map { OpFamilies.family($0.op) })
        for family in gradientCase.covers where !report.familiesInGraph.contains(family) {
            fail("declares coverage of \(family) but its graph has no such op")
        }

        let graph = try Pipeline.differentiate(forward)
        let executor = ReferenceExecutor(threads: 1)
        let outputs = try executor.run(graph, inputs: cb.inputs, parameters: cb.parameters)

        // Exactly one gradient output per trainable parameter, none for buffers or inputs.
        let gradNames = Set(graph.outputs.map(\.name).filter { $0.hasPrefix(Naming.gradientPrefix) })
        let expectedNames = Set(cb.trainable.map { Naming.gradientPrefix + $0 })
        if gradNames != expectedNames {
            fail("gradient outputs \(gradNames.sorted()), expected \(expectedNames.sorted())")
        }

        let rValues = cb.parameters[lossWeights]!
        let y0 = try executor.run(forward, inputs: cb.inputs, parameters: cb.parameters)["y"]!
        let scale = zip(y0.floats, rValues.floats).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
        func weightedSum(_ values: [Float]) -> Double {
            zip(values, rValues.floats).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }

        for name in cb.trainable {
            let value = cb.parameters[name]!
            guard let gradient = outputs[Naming.gradientPrefix + name] else { continue }
            guard gradient.shape == value.shape, gradient.dtype == .f32 else {
                fail("grad.\(name): shape \(describeShape(gradient.shape)), parameter \(describeShape(value.shape))")
                continue
            }
            let analytic = gradient.floats.map { $0 * analyticScale }
            let expectation = gradientCase.expectations[name] ?? .finiteDifferences

            if case .zero = expectation {
                if let bad = analytic.firstIndex(where: { $0 != 0 }) {
                    fail("grad.\(name)[\(bad)] = \(analytic[bad]), expected exactly 0")
                }
                report.checkedElements += analytic.count
            }
            if case .closedForm(let formula) = expectation {
                let expected = formula(cb.parameters, rValues)
                for (i, (a, e)) in zip(analytic, expected).enumerated() {
                    let tol = 1e-5 + 1e-5 * abs(Double(e))
                    if abs(Double(a) - Double(e)) > tol { fail("grad.\(name)[\(i)] = \(a), closed form \(e)") }
                }
                report.checkedElements += analytic.count
            }
            let wantsFD: Bool
            switch expectation {
            case .finiteDifferences: wantsFD = true
            case .zero(let fdToo): wantsFD = fdToo
            case .closedForm: wantsFD = false
            }
            guard wantsFD else { continue }

            for index in elementsToCheck(count: value.elementCount, name: name) {
                let p = value.floats[index]
                let h = step(for: p)
                var plus = cb.parameters, minus = cb.parameters
                plus[name]!.floats[index] = p + h
                minus[name]!.floats[index] = p - h
                let hTaken = (Double(p + h) - Double(p - h)) / 2
                let lossPlus = weightedSum(try executor.run(forward, inputs: cb.inputs, parameters: plus)["y"]!.floats)
                let lossMinus = weightedSum(try executor.run(forward, inputs: cb.inputs, parameters: minus)["y"]!.floats)
                let fd = (lossPlus - lossMinus) / (2 * hTaken)
                let an = Double(analytic[index])
                let atol = roundoffFactor * unitRoundoff * scale / hTaken + 1e-6
                let tolerance = atol + rtol * abs(an)
                let ratio = abs(fd - an) / tolerance
                report.worstRatio = max(report.worstRatio, ratio)
                report.checkedElements += 1
                if ratio > 1 {
                    fail(String(format: "grad.%@[%d] (p = %.4g): analytic %.6g, finite differences %.6g (tolerance %.2g)",
                                name, index, p, an, fd, tolerance))
                }
            }
        }
        return report
    }

    /// The case's forward graph with outputs `y` and `loss` = Σ y ⊙ R (R: buffer `harness.R`).
    static func buildForward(_ gradientCase: GradientCase) throws -> (GradientCaseBuilder, Graph) {
        let cb = GradientCaseBuilder(name: gradientCase.name, seed: seed)
        let y = gradientCase.build(cb)
        guard y.type.dtype == .f32 else { throw IRError("\(gradientCase.name): y must be f32, got \(y.type)") }
        let r = cb.buffer(lossWeights, y.shape)
        let weighted = y * r
        let loss = y.rank == 0 ? weighted : weighted.sumAll()
        cb.b.output("y", y)
        cb.b.output("loss", loss)
        return (cb, try cb.b.build())
    }

    /// All indices of a small tensor; otherwise `maxElements` distinct ones, first and last included.
    static func elementsToCheck(count: Int, name: String) -> [Int] {
        guard count > maxElements else { return Array(0..<count) }
        var random = HarnessRandom(seed: seed, name: "subset." + name)
        var chosen: [Int] = [0, count - 1]
        var taken: Set<Int> = Set(chosen)
        while chosen.count < maxElements {
            let i = random.int(0..<count)
            if taken.insert(i).inserted { chosen.append(i) }
        }
        return chosen.sorted()
    }

    /// Runs every case and records one XCTest failure per wrong element (graph-building errors too).
    @discardableResult
    static func assertCases(_ cases: [GradientCase], file: StaticString = #filePath,
                            line: UInt = #line) -> [GradientCaseReport] {
        var reports: [GradientCaseReport] = []
        for gradientCase in cases {
            do {
                let report = try run(gradientCase)
                for failure in report.failures {
                    XCTFail("\(gradientCase.name): \(failure)", file: file, line: line)
                }
                if report.checkedElements == 0 {
                    XCTFail("\(gradientCase.name): no gradient element was checked", file: file, line: line)
                }
                reports.append(report)
            } catch {
                XCTFail("\(gradientCase.name): \(error)", file: file, line: line)
            }
        }
        let elements = reports.reduce(0) { $0 + $1.checkedElements }
        if let worst = reports.max(by: { $0.worstRatio < $1.worstRatio }) {
            print(String(format: "gradient check: %d case(s), %d element(s), worst error/tolerance %.3f (%@)",
                         reports.count, elements, worst.worstRatio, worst.name))
        }
        return reports
    }
}
