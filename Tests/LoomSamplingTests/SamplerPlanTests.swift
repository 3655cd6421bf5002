import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// Compiled sampler-step plans: the guidance formulas and the solver update end up in one fused
/// elementwise kernel, and the plan agrees with the unfused step graph on the reference executor
/// for every guidance mode, inside and outside the intervals.
final class SamplerPlanTests: XCTestCase {
    let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 3, learnSigma: false, patch: 2, hidden: 32,
                            depth: 3, heads: 2, numClasses: 5, igLayer: 1)
    let guide = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 3, learnSigma: false, patch: 2, hidden: 16,
                            depth: 1, heads: 2, numClasses: 5)

    func weights(_ config: ModelConfig, seed: UInt64) throws -> [String: HostTensor] {
        let graph = try DiffusionTransformer(config).forwardGraph(batch: 1)
        var values = ParameterInitializer.initialize(graph, seed: seed)
        var stream = RandomStream(seed: seed, stream: 99)
        for (name, value) in values where value.floats.allSatisfy({ $0 == 0 }) {
            values[name] = HostTensor(shape: value.shape, floats: stream.normal(value.elementCount, std: 0.05))
        }
        return values
    }

    func inputs(batch: Int, coefficients: StepCoefficients) -> [String: HostTensor] {
        var stream = RandomStream(seed: 5, stream: 6)
        let shape = [batch, 3, 8, 8], count = batch * 192
        return ["x": HostTensor(shape: shape, floats: stream.normal(count)),
                "t": HostTensor(shape: [batch], floats: stream.uniform(batch)),
                "y": HostTensor(shape: [batch], ints: (0..<batch).map { Int64($0 % 5) }),
                "z": HostTensor(shape: shape, floats: stream.normal(count)),
                "anchor": HostTensor(shape: shape, floats: stream.normal(count)),
                "carry": HostTensor(shape: shape, floats: stream.normal(count)),
                "coef": HostTensor(shape: [StepCoefficients.count], floats: coefficients.values)]
    }

    func testEveryModeMatchesTheUnfusedStep() throws {
        var parameters = try weights(model, seed: 1)
        for (name, value) in try weights(guide, seed: 2) { parameters["guide." + name] = value }
        let network = try DiffusionTransformer(model), guideNetwork = try DiffusionTransformer(guide)
        let batch = 3
        for mode in GuidanceMode.allCases {
            for cfgChannels in mode.usesCFG ? [nil, 2] : [nil] {
                // Inside the intervals (w, s as given) and outside (w = 1, undoubled plan).
                for inside in [true, false] {
                    let settings = GuidanceSettings(mode: mode, weight: 1.7, cfgScale: 2.5, cfgChannels: cfgChannels)
                    let cfg = mode.usesCFG && inside
                    let graph = try samplerStepGraph(model: network, guideModel: mode == .autoguidance ? guideNetwork : nil,
                                                     batch: batch, guidance: settings, cfg: cfg)
                    let plan = try Pipeline.inference().plan(graph)
                    let coefficients = StepCoefficients(weight: inside ? 1.7 : 1, cfgScale: cfg ? 2.5 : 1, cx: 0.9,
                                                        cd: -0.1, cz: 0.05, ca: 0.3, cc: 0.2)
                    let feed = inputs(batch: batch, coefficients: coefficients)
                    let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: feed, parameters: parameters)
                    let executor = try PlanExecutor(plan: plan, threads: 1)
                    try executor.setParameters(parameters, ignoringExtra: true)
                    let compiled = try executor.run(inputs: feed)
                    let label = "\(mode.rawValue) channels \(cfgChannels.map(String.init) ?? "all") inside \(inside)"
                    for name in ["guided", "x_next"] {
                        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(compiled[name]!, reference[name]!), 1e-5,
                                                 "\(label): \(name)")
                    }
                    // x_next comes out of one fused elementwise kernel (guidance + update).
                    let producer = plan.graph.nodes[plan.graph.outputs.first { $0.name == "x_next" }!.node]
                    guard case .fused(.elementwise(let program)) = producer.op else {
                        XCTFail("\(label): x_next is made by \(producer.op.mnemonic), not one fused kernel")
                        continue
                    }
                    XCTAssertGreaterThanOrEqual(program.instructions.count, 5, label)
                    // With IG, the IG head exists; without a mode that reads it, it is gone.
                    let hasHead = plan.graph.nodes.contains { $0.scope.hasPrefix("final_layer_xr") }
                    XCTAssertEqual(hasHead, mode.usesIG, "\(label): IG head launches")
                }
            }
        }
    }
}
