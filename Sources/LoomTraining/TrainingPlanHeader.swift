import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// The training configuration a compiled training plan carries in its header, and the check that
/// a run may use the plan: by the header alone, without tracing or differentiating anything.
///
/// What the compiled step fixes — model, batch, objective and loss terms, AdamW's β₁, β₂, ε, whether
/// an EMA exists, the precision — must equal the run's; a difference is refused naming both values.
/// Everything else (learning rate and warm-up, λ, ω, clip, weight decay, EMA decay, seed, label
/// dropout, time sampling, steps, limit) is a run-time input or host-side setting, so the run's
/// own values apply.
public enum TrainingPlanHeader {
    /// Header metadata for a plan compiled from `config` (one rank's step over `ranks`).
    public static func metadata(for config: TrainingConfig, ranks: Int = 1) -> [String: String] {
        let json = config.json()
        var header = [Naming.trainingConfigKey: json, Naming.trainingConfigHashKey: Plan.checksum(json)]
        if ranks > 1 { header[Naming.ranksKey] = String(ranks) }
        return header
    }

    /// The number of ranks `plan` was compiled for (1: one process).
    public static func ranks(of plan: Plan) -> Int { plan.metadata[Naming.ranksKey].flatMap { Int($0) } ?? 1 }

    /// The configuration `plan` was compiled for; errors name `source`.
    public static func config(of plan: Plan, source: String) throws -> TrainingConfig {
        guard plan.graph.outputs.contains(where: { $0.name.hasPrefix(Naming.updatePrefix) }) else {
            throw DiffusionError("\(source) is not a training plan (no \(Naming.updatePrefix)* outputs); compile one with `loom compile --graph train`")
        }
        guard let json = plan.metadata[Naming.trainingConfigKey], let hash = plan.metadata[Naming.trainingConfigHashKey] else {
            throw DiffusionError("\(source) carries no training configuration in its header; recompile it with `loom compile --graph train`")
        }
        guard hash == Plan.checksum(json) else {
            throw DiffusionError("\(source): the training configuration in the header does not match its hash (edited file); recompile it")
        }
        return try TrainingConfig.from(json: json, source: source)
    }

    /// Refuses `plan` for a run with `config` when anything the compiled step fixes differs.
    public static func check(_ plan: Plan, source: String, against config: TrainingConfig, ranks: Int = 1) throws {
        let compiled = try self.config(of: plan, source: source)
        var differences: [(String, String, String)] = []
        if self.ranks(of: plan) != ranks { differences.append(("--ranks", "\(self.ranks(of: plan))", "\(ranks) (mpirun -np)")) }
        let (a, b) = (compiled.model, config.model)
        if a != b {
            for (flag, x, y) in [("model", a.backbone.rawValue, b.backbone.rawValue), ("--hidden", "\(a.hidden)", "\(b.hidden)"),
                                 ("--depth", "\(a.depth)", "\(b.depth)"), ("--heads", "\(a.heads)", "\(b.heads)"),
                                 ("--patch", "\(a.patch)", "\(b.patch)"), ("--input-size", "\(a.inputSize)", "\(b.inputSize)"),
                                 ("--channels", "\(a.inChannels)", "\(b.inChannels)"), ("--classes", "\(a.numClasses)", "\(b.numClasses)"),
                                 ("--ig-layer", a.igLayer.map { "\($0)" } ?? "none", b.igLayer.map { "\($0)" } ?? "none"),
                                 ("--learn-sigma", "\(a.learnSigma)", "\(b.learnSigma)")] where x != y {
                differences.append((flag, x, y))
            }
            if differences.isEmpty { differences.append(("model configuration", "\(a)", "\(b)")) }
        }
        if compiled.batch != config.batch { differences.append(("--batch", "\(compiled.batch)", "\(config.batch)")) }
        differences += compiled.loss.compiledDifferences(from: config.loss)
        differences += compiled.optimizer.compiledDifferences(from: config.optimizer)
        if compiled.resolvedPrecision != config.resolvedPrecision {
            differences.append(("--precision", compiled.resolvedPrecision.rawValue, config.resolvedPrecision.rawValue))
        }
        guard let (flag, planValue, runValue) = differences.first else { return }
        let more = differences.count > 1 ? " (and \(differences.count - 1) more difference(s))" : ""
        throw DiffusionError("\(source) was compiled for \(flag) \(planValue), this run asks for \(runValue)\(more); compile the plan with the run's flags (learning rate, λ, ω, clip, weight decay and EMA decay may differ: they are run-time inputs)")
    }
}
