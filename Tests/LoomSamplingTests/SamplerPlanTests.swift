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

/// Compiled sampler-step plans: everything after the heads (guidance on each half, CFG, the solver
/// update) is one launch that reads the heads in place, and the plan agrees with the unfused step
/// graph on the reference executor for every guidance mode, inside and outside the intervals.
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
                    let graph = try samplerStepGraph(model: network, guideModel: mode.usesGuideNetwork ? guideNetwork : nil,
                                                     batch: batch, guidance: settings, cfg: cfg)
                    let plan = try Pipeline.inference().plan(graph)
                    let coefficients = StepCoefficients(weight: inside ? 1.7 : 1, cfgScale: cfg ? 2.5 : 1, cx: 0.9,
                                                        cd: -0.1, cz: 0.05, ca: 0.3)
                    let feed = inputs(batch: batch, coefficients: coefficients)
                    let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: feed, parameters: parameters)
                    let executor = try PlanExecutor(plan: plan, threads: 1)
                    try executor.setParameters(parameters, ignoringExtra: true)
                    let compiled = try executor.run(inputs: feed)
                    let label = "\(mode.rawValue) channels \(cfgChannels.map(String.init) ?? "all") inside \(inside)"
                    XCTAssertEqual(Array(compiled.keys), ["x_next"], label)
                    XCTAssertLessThanOrEqual(GoldenCheck.relativeError(compiled["x_next"]!, reference["x_next"]!), 1e-5,
                                             "\(label): x_next")
                    try checkOneLaunchAfterTheHeads(plan, executor, label: label,
                                                    perChannelScale: cfg && cfgChannels != nil)
                    // With IG, the IG head exists; without a mode that reads it, it is gone.
                    let hasHead = plan.graph.nodes.contains { $0.scope.hasPrefix("final_layer_xr") }
                    XCTAssertEqual(hasHead, mode.usesIG, "\(label): IG head launches")
                }
            }
        }
    }

    /// Exactly one launch reads what the network computed: the fused kernel that writes `x_next`,
    /// reading the heads through windows (no slice copies). It is the whole tail, except when CFG
    /// guides only some channels: then a few launches build the per-channel scale from `coef`.
    func checkOneLaunchAfterTheHeads(_ plan: Plan, _ executor: PlanExecutor, label: String,
                                     perChannelScale: Bool) throws {
        let nodes = plan.graph.nodes
        var network = [Bool](repeating: false, count: nodes.count)
        for node in nodes {
            if case .parameter = node.op { network[node.id] = true }
            if node.inputs.contains(where: { network[$0] }) { network[node.id] = true }
        }
        let tail = executor.launches.filter { nodes[$0].scope.hasPrefix(samplerScope) }
        let afterHeads = tail.filter { network[$0] }
        XCTAssertEqual(afterHeads.count, 1, "\(label): launches after the heads: \(afterHeads.map { nodes[$0].op.mnemonic })")
        if !perChannelScale {
            XCTAssertEqual(tail.count, 1, "\(label): tail launches \(tail.map { nodes[$0].op.mnemonic })")
        }
        let output = plan.graph.outputs.first { $0.name == "x_next" }!.node
        XCTAssertEqual(afterHeads.first, output, "\(label): the launch after the heads writes x_next")
        guard case .fused(.elementwise(let program)) = nodes[output].op else {
            return XCTFail("\(label): x_next is made by \(nodes[output].op.mnemonic), not a fused elementwise kernel")
        }
        // Each head operand is read in place: a window of a network value, never a slice launch.
        let heads = nodes[output].inputs.indices.filter { network[nodes[output].inputs[$0]] }
        XCTAssertFalse(heads.isEmpty, label)
        for i in heads {
            let whole = nodes[nodes[output].inputs[i]].type.shape == nodes[output].type.shape
            XCTAssertTrue(program.windows[i] != nil || whole, "\(label): head operand \(i) is neither whole nor a window")
        }
        XCTAssertFalse(executor.launches.contains { id in
            if case .slice = nodes[id].op { return network[id] && nodes[id].scope.hasPrefix(samplerScope) }
            return false
        }, "\(label): a head is sliced by a copy")
    }
}
