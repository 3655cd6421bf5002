import LoomCompiler
import LoomData
import LoomGraphs
import LoomIR
import LoomRuntime

/// Recomputes a golden file (Docs/conventions.md §5) with Loom and compares every tensor it holds with
/// `max|a − b| / max|golden|`.
public struct GoldenCheck {
    /// One compared tensor.
    public struct Row {
        public var name: String
        public var error: Double
        public var passed: Bool
    }

    public var rows: [Row] = []
    /// Golden tensors Loom could not compute (each one fails the check).
    public var missing: [String] = []
    /// Everything Loom computed, under the golden file's names.
    public var computed: [String: HostTensor] = [:]
    /// With precision bf16: each tensor's `max|a − b| / max|golden|` against the file's fp32 value.
    public var fp32Drift: [Row] = []
    public var model: ModelConfig
    public var rtol: Double

    public var passed: Bool { missing.isEmpty && rows.allSatisfy(\.passed) }

    /// Tolerance of a bf16 plan against the reference of the same rounding (Docs/precision.md).
    /// Both round every GEMM operand to bf16, but they sum in different orders (oneDNN's bf16
    /// kernel, fused kernels against separate ops), so a value can land on the neighbouring bf16
    /// number before its next GEMM; one such flip moves what depends on it by about 2^-8 ≈ 3.9e-3
    /// relative. Largest seen on the golden models: 2.9e-3 (outputs), 5.0e-3 (gradients).
    public static let bf16Tolerance = 1e-2

    /// Runs the check on the golden file at `path`.
    /// With `compiled`, the graph goes through the compiler (fusion, memory plan) and runs as a
    /// `Plan` on `kernels`; otherwise the reference executor runs it node by node. With precision
    /// `bf16` the golden values are not the file's fp32 tensors but the reference executor's run of
    /// the same graph on bf16-rounded GEMM operands (the reference of the same rounding); `fp32Drift`
    /// then holds each tensor's distance from the file's fp32 value, for information.
    /// `rtol` defaults to 1e-4 for fp32 and `bf16Tolerance` for bf16.
    public init(path: String, rtol: Double? = nil, threads: Int = Threading.defaultThreads,
                compiled: Bool = false, precision: PrecisionPolicy = .fp32, kernels: KernelSelection = .current) throws {
        let rtol = rtol ?? (precision == .bf16 ? GoldenCheck.bf16Tolerance : 1e-4)
        let file = try SafeTensors.read(path: path)
        guard let json = file.metadata["config"] else {
            throw DiffusionError("\(path): metadata has no \"config\" entry (see Docs/conventions.md §5)")
        }
        let config = try GoldenConfig(json: json, source: path)
        self.model = config.model
        self.rtol = rtol
        let network = try DiffusionTransformer(config.model)
        guard let x0 = file.tensors["x0"] else { throw DiffusionError("\(path): no tensor \"x0\"") }
        let batch = x0.shape.first ?? 0
        var graph = try objectiveGraph(network, batch: batch, settings: config.loss)
        let goldenGradients = file.order.filter { $0.hasPrefix(Naming.gradientPrefix) }
        if !goldenGradients.isEmpty { graph = try Pipeline.differentiate(graph) }

        // Parameters: exactly the model's keys under `param.`; RoPE buffers are checked, then used.
        var parameters: [String: HostTensor] = [:]
        let expected = Set(graph.parameterNodes.compactMap { node -> String? in
            if case .parameter(let name, _, _) = node.op { return Naming.goldenParameterPrefix + name }
            return nil
        })
        try file.validateKeys(expected: expected, ignoringPrefixes: [Naming.gradientPrefix, "x0", "eps", "t", "y", "xt", "target",
                                                                      "out_", "loss"])
        for node in graph.parameterNodes {
            guard case .parameter(let name, let initializer, _) = node.op else { continue }
            let value = try file.tensor(Naming.goldenParameterPrefix + name, expected: node.type)
            parameters[name] = value
            if case .ropeCos = initializer { try compareBuffer(name, value, initializer, node.type) }
            if case .ropeSin = initializer { try compareBuffer(name, value, initializer, node.type) }
        }

        var inputs: [String: HostTensor] = [:]
        for node in graph.inputNodes {
            guard case .input(let name) = node.op else { continue }
            if name == "ddpm_coef" {
                let t = try file.tensor("t", expected: TensorType(.f32, [batch]))
                let coef = try DDPMSchedule().noisingCoefficients(t.floats)
                inputs[name] = HostTensor(shape: [batch, 2], floats: coef)
            } else if let weight = config.loss.runtimeInputs[name] {
                inputs[name] = .scalar(weight)      // λ, ω: from the golden's configuration
            } else {
                inputs[name] = try file.tensor(name, expected: node.type)
            }
        }
        var goldens = file.tensors
        if precision == .bf16 {
            let rounded = try PrecisionPass(policy: .bf16).run(graph)
            goldens = try ReferenceExecutor(threads: threads).run(rounded, inputs: inputs, parameters: parameters)
        }
        if compiled {
            let executor = try PlanExecutor(plan: try Pipeline.inference(precision: precision).plan(graph), threads: threads,
                                        kernels: kernels)
            try executor.setParameters(parameters)
            computed = try executor.run(inputs: inputs)
        } else {
            let reference = precision == .bf16 ? try PrecisionPass(policy: .bf16).run(graph) : graph
            computed = try ReferenceExecutor(threads: threads).run(reference, inputs: inputs, parameters: parameters)
        }
        for name in ["xt", "target", "out_final", "out_inter", Naming.finalLossOutput, Naming.intermediateLossOutput, Naming.lossOutput] + goldenGradients {
            guard let golden = goldens[name], file.tensors[name] != nil else { continue }
            if precision == .bf16, let mine = computed[name], let fp32 = file.tensors[name] {
                fp32Drift.append(Row(name: name, error: GoldenCheck.relativeError(mine, fp32), passed: true))
            }
            guard let mine = computed[name] else {
                missing.append(name)
                continue
            }
            let error = GoldenCheck.relativeError(mine, golden)
            rows.append(Row(name: name, error: error, passed: error <= rtol && mine.shape == golden.shape))
        }
    }

    private mutating func compareBuffer(_ name: String, _ value: HostTensor, _ initializer: Initializer,
                                        _ type: TensorType) throws {
        let mine = HostTensor(shape: type.shape, floats: ParameterInitializer.generate(
            initializer, shape: type.shape, name: name, seed: 0))
        let error = GoldenCheck.relativeError(mine, value)
        rows.append(Row(name: name, error: error, passed: error <= rtol))
    }

    /// `max|a − b| / max|reference|` (plain `max|a − b|` when the reference is all zeros);
    /// infinite when the shapes differ or a value is not finite.
    public static func relativeError(_ a: HostTensor, _ reference: HostTensor) -> Double {
        guard a.shape == reference.shape, a.floats.count == reference.floats.count else { return .infinity }
        var diff = 0.0, scale = 0.0
        for (x, y) in zip(a.floats, reference.floats) {
            guard x.isFinite else { return .infinity }
            diff = max(diff, Double(abs(x - y)))
            scale = max(scale, Double(abs(y)))
        }
        return scale > 0 ? diff / scale : diff
    }
}
