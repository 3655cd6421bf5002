import LoomCompiler
import LoomGraphs
import LoomIR
import LoomRuntime

/// Recomputes a golden file (REFERENCE.md §5) with Loom and compares every tensor it holds with
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
    public var model: ModelConfig
    public var rtol: Double

    public var passed: Bool { missing.isEmpty && rows.allSatisfy(\.passed) }

    /// Runs the check on the golden file at `path`.
    /// With `compiled`, the graph goes through the compiler (fusion, memory plan) and runs as a
    /// `Plan`; otherwise the reference executor runs it node by node.
    public init(path: String, rtol: Double = 1e-4, threads: Int = Threading.defaultThreads,
                compiled: Bool = false) throws {
        let file = try SafeTensors.read(path: path)
        guard let json = file.metadata["config"] else {
            throw DiffusionError("\(path): metadata has no \"config\" entry (see REFERENCE.md §5)")
        }
        let config = try GoldenConfig(json: json, source: path)
        self.model = config.model
        self.rtol = rtol
        let network = try DiffusionTransformer(config.model)
        guard let x0 = file.tensors["x0"] else { throw DiffusionError("\(path): no tensor \"x0\"") }
        let batch = x0.shape.first ?? 0
        var graph = try lossGraph(network, batch: batch, settings: config.loss)
        let goldenGradients = file.order.filter { $0.hasPrefix(Autodiff.gradientPrefix) }
        if !goldenGradients.isEmpty { graph = try Autodiff.differentiate(graph, loss: "loss") }

        // Parameters: exactly the model's keys under `param.`; RoPE buffers are checked, then used.
        var parameters: [String: HostTensor] = [:]
        let expected = Set(graph.parameterNodes.compactMap { node -> String? in
            if case .parameter(let name, _, _) = node.op { return "param." + name }
            return nil
        })
        try file.validateKeys(expected: expected, ignoringPrefixes: ["grad.", "x0", "eps", "t", "y", "xt", "target",
                                                                      "out_", "loss"])
        for node in graph.parameterNodes {
            guard case .parameter(let name, let initializer, _) = node.op else { continue }
            let value = try file.tensor("param." + name, expected: node.type)
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
            } else {
                inputs[name] = try file.tensor(name, expected: node.type)
            }
        }
        if compiled {
            let executor = PlanExecutor(plan: try PlanCompiler.compile(graph), threads: threads)
            try executor.setParameters(parameters)
            computed = try executor.run(inputs: inputs)
        } else {
            computed = try ReferenceExecutor(threads: threads).run(graph, inputs: inputs, parameters: parameters)
        }
        for name in ["xt", "target", "out_final", "out_inter", "loss_final", "loss_inter", "loss"] + goldenGradients {
            guard let golden = file.tensors[name] else { continue }
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
