import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// The persistent state of a run: model weights under their official keys, AdamW moments
/// (`optim.m.<key>`, `optim.v.<key>`), EMA weights (`ema.<key>`), and the number of steps done.
/// Randomness is counter-based (seed + step), so the step count is the whole RNG state.
public struct TrainingState {
    /// The checkpoint tensor holding the step count.
    public static let stepTensor = "train.step"
    public var tensors: [String: HostTensor]
    public var step: Int

    /// Fresh state for the training graph: initialised weights, zero moments, EMA = weights.
    public init(graph: Graph, seed: UInt64) {
        tensors = ParameterInitializer.initialize(graph, seed: seed)
        for (name, value) in tensors {
            guard let key = Naming.strip(Naming.emaPrefix, from: name) else { continue }
            tensors[name] = tensors[key] ?? value
        }
        step = 0
    }

    public init(tensors: [String: HostTensor], step: Int) {
        self.tensors = tensors
        self.step = step
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename): an interrupted write
    /// never replaces the previous checkpoint with a corrupt one.
    public func save(to path: String, config: TrainingConfig) throws {
        var entries = tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        entries.append((TrainingState.stepTensor, HostTensor(shape: [], ints: [Int64(step)])))
        let metadata = ["format": "loom-checkpoint-1", Naming.trainingConfigKey: config.json(), Naming.stepKey: String(step)]
        try SafeTensors.write(entries, metadata: metadata, to: path)
    }

    /// Reads a checkpoint written by `save`, checking it against the training graph's table.
    public static func load(path: String, graph: Graph) throws -> (TrainingState, TrainingConfig) {
        let file = try SafeTensors.read(path: path)
        let config = try TrainingState.config(of: file, path: path)
        let stepTensor = try file.tensor(TrainingState.stepTensor, expected: TensorType(.i64, []))
        var tensors: [String: HostTensor] = [:]
        for node in graph.parameterNodes {
            guard let name = node.op.parameterName else { continue }
            tensors[name] = try file.tensor(name, expected: node.type)
        }
        try file.validateKeys(expected: Set(tensors.keys).union([TrainingState.stepTensor]), ignoringPrefixes: [])
        return (TrainingState(tensors: tensors, step: Int(stepTensor.ints[0])), config)
    }

    /// The training configuration stored in a checkpoint's metadata.
    public static func config(of file: SafeTensorsFile, path: String) throws -> TrainingConfig {
        guard let json = file.metadata[Naming.trainingConfigKey] else {
            throw DiffusionError("\(path): not a Loom training checkpoint (no \"\(Naming.trainingConfigKey)\" metadata)")
        }
        return try TrainingConfig.from(json: json, source: path)
    }

    /// Every tensor the step's graph keeps is here with its type.
    func checkTable(against graph: Graph) throws {
        for node in graph.parameterNodes {
            guard let name = node.op.parameterName else { continue }
            guard let tensor = tensors[name] else {
                throw DiffusionError("the training state has no \(name), which the training step needs")
            }
            guard tensor.shape == node.type.shape else {
                throw DiffusionError("the training state's \(name) has shape \(tensor.shape), the training step needs \(node.type.shape)")
            }
        }
    }

    /// Model weights only (official state-dict keys), optionally the EMA copy under those keys.
    public func weights(graph: Graph, ema: Bool) -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for name in tensors.keys where !name.hasPrefix(Naming.optimizerPrefix) && !name.hasPrefix(Naming.emaPrefix) {
            out[name] = (ema ? tensors[Naming.emaPrefix + name] : nil) ?? tensors[name]
        }
        return out
    }
}
