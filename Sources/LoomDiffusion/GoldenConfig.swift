import Foundation
import LoomData
import LoomGraphs

/// The `config` metadata of a golden file (Docs/conventions.md §5), turned into a model and loss settings.
public struct GoldenConfig {
    public var model: ModelConfig
    public var loss: LossSettings

    /// Parses the JSON string; errors name the key at fault.
    public init(json: String, source: String) throws {
        guard let data = json.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DiffusionError("\(source): metadata \"config\" is not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let value = object[key] as? NSNumber,
                  let n = Int(exactly: value.doubleValue) else {
                throw DiffusionError("\(source): config key \"\(key)\" must be an integer, found \(object[key].map { "\($0)" } ?? "nothing")")
            }
            return n
        }
        func bool(_ key: String) throws -> Bool {
            guard let value = object[key] as? Bool else {
                throw DiffusionError("\(source): config key \"\(key)\" must be true or false, found \(object[key].map { "\($0)" } ?? "nothing")")
            }
            return value
        }
        guard let objectiveName = object["objective"] as? String, let objective = Objective(rawValue: objectiveName) else {
            let names = Objective.allCases.map(\.rawValue).joined(separator: ", ")
            throw DiffusionError("\(source): config key \"objective\" must be one of \(names), found \(object["objective"].map { "\($0)" } ?? "nothing")")
        }
        let lightning = try bool("lightning")
        let learnSigma = try bool("learn_sigma")
        let inChannels = try int("in_channels")
        let outChannels = try int("out_channels")
        guard outChannels == (learnSigma ? 2 * inChannels : inChannels) else {
            throw DiffusionError("\(source): out_channels \(outChannels) disagrees with learn_sigma \(learnSigma) and in_channels \(inChannels)")
        }
        var igLayer: Int?
        if let raw = object["ig_layer"], !(raw is NSNull) { igLayer = try int("ig_layer") }
        let lambda = (object["ig_lambda"] as? NSNumber)?.floatValue ?? 0.5
        let backbone: Backbone = lightning ? .lightningdit : (objective == .ddpmEps ? .dit : .sit)
        model = ModelConfig(backbone: backbone, inputSize: try int("input_size"), inChannels: inChannels,
                            learnSigma: learnSigma, patch: try int("patch"), hidden: try int("hidden"),
                            depth: try int("depth"), heads: try int("heads"), numClasses: try int("num_classes"),
                            igLayer: igLayer)
        let cosine = (object["cosine_loss"] as? Bool) ?? false
        loss = LossSettings(objective: objective, igLambda: lambda, cosineLoss: cosine)
    }
}
