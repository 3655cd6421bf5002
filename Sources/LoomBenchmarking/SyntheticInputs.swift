import Foundation
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining
import LoomData

/// Deterministic stand-in inputs and parameters for timing a plan: the time of a step does not
/// depend on the values, only on the shapes.
public enum SyntheticInputs {
    /// Floats uniform in (0.05, 0.95) (valid timesteps, probabilities and images alike), integer
    /// inputs (labels) cycling below `classes`, and the optimizer's scalars of step 1.
    public static func inputs(_ graph: Graph, classes: Int = 1, scalars: [String: Float] = [:]) -> [String: HostTensor] {
        var stream = RandomStream(seed: 1, stream: 7)
        var out: [String: HostTensor] = [:]
        for node in graph.inputNodes {
            guard case .input(let name) = node.op else { continue }
            if node.type.dtype != .f32 {
                let count = node.type.elementCount
                out[name] = HostTensor(shape: node.type.shape, ints: (0..<count).map { Int64($0 % max(classes, 1)) },
                                       dtype: node.type.dtype)
            } else if node.type.rank == 0 {
                out[name] = .scalar(scalars[name] ?? ([Naming.firstBiasInput, Naming.secondBiasInput].contains(name) ? 0.5 : 1e-4))
            } else {
                out[name] = HostTensor(shape: node.type.shape, floats: stream.uniform(node.type.elementCount, low: 0.05, high: 0.95))
            }
        }
        return out
    }

    /// Stand-in inputs of a sampler-step graph: `inputs(graph, classes:)` with the `coef` input set
    /// to IG weight 1.5, CFG scale 1.5 and an Euler update of step −0.02.
    public static func samplerStep(_ graph: Graph, classes: Int) -> [String: HostTensor] {
        var feed = inputs(graph, classes: classes)
        if feed["coef"] != nil {
            feed["coef"] = HostTensor(shape: [StepCoefficients.count],
                                      floats: StepCoefficients(weight: 1.5, cfgScale: 1.5, cx: 1, cd: -0.02).values)
        }
        return feed
    }

    /// The graph's initial parameters, with zero-initialised weights replaced by small normals so
    /// that no kernel sees an all-zero operand.
    public static func parameters(_ graph: Graph) -> [String: HostTensor] {
        var values: [String: HostTensor] = [:]
        for node in graph.parameterNodes {
            guard case .parameter(let name, let initializer, _) = node.op else { continue }
            values[name] = parameter(name, initializer, node.type.shape)
        }
        return values
    }

    /// Fills `executor`'s parameter region one tensor at a time (the host never holds more than
    /// one tensor), with the values `parameters(graph)` gives.
    public static func load(_ graph: Graph, into executor: PlanExecutor) throws {
        var unfilled = Set(executor.parameterEntries.map(\.name))
        for node in graph.parameterNodes {
            guard case .parameter(let name, let initializer, _) = node.op, unfilled.remove(name) != nil else { continue }
            try executor.setParameter(name, parameter(name, initializer, node.type.shape))
        }
        if let name = unfilled.sorted().first {
            throw DiffusionError("plan parameter \"\(name)\" (and \(unfilled.count - 1) more) is not a parameter of graph \(graph.name)")
        }
    }

    static func parameter(_ name: String, _ initializer: Initializer, _ shape: [Int]) -> HostTensor {
        let floats = ParameterInitializer.generate(initializer, shape: shape, name: name, seed: 0)
        if !name.hasPrefix(Naming.optimizerPrefix), floats.allSatisfy({ $0 == 0 }) {
            var stream = RandomStream(seed: 2, stream: RandomStream.streamID(name))
            return HostTensor(shape: shape, floats: stream.normal(floats.count, std: 0.02))
        }
        return HostTensor(shape: shape, floats: floats)
    }
}
