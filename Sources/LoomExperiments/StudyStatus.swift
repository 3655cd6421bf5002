import Foundation
import LoomData
import LoomIR
import LoomRuntime
import LoomTraining

/// Where a study stands, read from its config, results.json and run folders without running or
/// writing anything: each part (for one seed, the rows that share training variants, which is
/// what `--variants … --seeds …` runs) is done, under way or not started, with the command that
/// runs it.
public struct StudyStatus: Equatable, Sendable {
    /// How far one variant's training for one seed has come.
    public enum Training: Equatable, Sendable {
        case notStarted
        /// A checkpoint at `step` of `steps`.
        case atStep(Int, of: Int)
        case finished
    }

    /// A row of a part, and whether it has an up-to-date result for the part's seed.
    public struct Row: Equatable, Sendable {
        public var label: String
        public var done: Bool
    }

    /// One part of the study: its variants (config order), seed, rows and how far each has come.
    public struct Part: Equatable, Sendable {
        public var variants: [String]
        public var seed: UInt64
        public var rows: [Row]
        /// Each variant's training, in `variants` order.
        public var training: [Training]
        /// Whether another process holds one of the part's training locks now (a part training now).
        public var trainingNow: Bool

        public var rowsDone: Int { rows.filter(\.done).count }
        public var isDone: Bool { rowsDone == rows.count }
        public var isStarted: Bool { rowsDone > 0 || training.contains { $0 != .notStarted } }
    }

    public var parts: [Part]

    public var partsDone: Int { parts.filter(\.isDone).count }
    public var results: Int { parts.reduce(0) { $0 + $1.rows.count } }
    public var resultsDone: Int { parts.reduce(0) { $0 + $1.rowsDone } }

    /// The text `loom experiment --status` prints; `configPath` goes into the commands.
    public func report(configPath: String) -> String {
        var lines = ["\(configPath): \(partsDone) of \(parts.count) parts done, \(resultsDone) of \(results) (row, seed) results"]
        for part in parts {
            let name = "\(part.variants.joined(separator: ",")) seed \(part.seed)"
            let state = part.isDone ? "done" : part.trainingNow ? "training now" : part.isStarted ? "under way" : "not started"
            let training = zip(part.variants, part.training).compactMap { variant, training -> String? in
                switch training {
                case .notStarted: return part.isDone ? nil : "\(variant) not trained"
                case .atStep(let step, let steps): return "\(variant) at step \(step) of \(steps)"
                case .finished: return nil
                }
            }
            let detail = (["\(part.rowsDone) of \(part.rows.count) rows"] + training).joined(separator: "; ")
            lines.append("  " + state.padding(toLength: 12, withPad: " ", startingAt: 0) + "  \(name): \(detail)")
        }
        let left = parts.filter { !$0.isDone && !$0.trainingNow }
        if !left.isEmpty {
            lines.append("to run what is left (parts side by side with --threads 1 each use two cores best):")
            for part in left {
                lines.append("  loom experiment \(configPath) --variants \(part.variants.joined(separator: ",")) "
                             + "--seeds \(part.seed) --threads 1")
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension ExperimentConfig {
    /// The study's parts for one seed: rows joined when they need a common training variant
    /// (`ResultRow.variantsNeeded`), each with the union of their variants in config order.
    public func partsOfASeed() -> [(variants: [String], rows: [ResultRow])] {
        var groups: [(variants: Set<String>, rows: [ResultRow])] = []
        for row in rows {
            let needed = Set(row.variantsNeeded)
            let joined = groups.indices.filter { !groups[$0].variants.isDisjoint(with: needed) }
            var merged = (variants: needed, rows: [ResultRow]())
            for index in joined {
                merged.variants.formUnion(groups[index].variants)
                merged.rows += groups[index].rows
            }
            merged.rows.append(row)
            let at = joined.first ?? groups.count
            for index in joined.reversed() { groups.remove(at: index) }
            groups.insert(merged, at: min(at, groups.count))
        }
        let variantOrder = training.map(\.name)
        let rowIndex = Dictionary(rows.enumerated().map { ($1.label, $0) }, uniquingKeysWith: { first, _ in first })
        return groups.map { group in
            (variantOrder.filter(group.variants.contains),
             group.rows.sorted { (rowIndex[$0.label] ?? 0) < (rowIndex[$1.label] ?? 0) })
        }
    }
}

extension ExperimentRunner {
    /// The study's status (`StudyStatus`): reads results.json, checkpoints and training locks only.
    public func status() throws -> StudyStatus {
        try config.validate()
        let results = try loadResults()
        // The partition and each row's key are the same for every seed: found once.
        let partition = config.partsOfASeed()
        let keys = Dictionary(config.rows.map { ($0.label, rowKey($0)) }, uniquingKeysWith: { first, _ in first })
        var parts: [StudyStatus.Part] = []
        for seed in config.studySeeds {
            for (variants, rows) in partition {
                let rowStates = rows.map { row in
                    StudyStatus.Row(label: row.label, done: results.contains {
                        $0.label == row.label && $0.seed == seed && $0.rowKey == keys[row.label]
                    })
                }
                var training: [StudyStatus.Training] = []
                var trainingNow = false
                for name in variants {
                    training.append(try trainingProgress(name, seed: seed))
                    trainingNow = try trainingNow || isTrainingNow(name, seed: seed)
                }
                parts.append(StudyStatus.Part(variants: variants, seed: seed, rows: rowStates, training: training,
                                              trainingNow: trainingNow))
            }
        }
        return StudyStatus(parts: parts)
    }

    /// The step of `variant`'s checkpoint for `seed`, from the checkpoint's header.
    func trainingProgress(_ variant: String, seed: UInt64) throws -> StudyStatus.Training {
        let path = checkpointPath(variant, seed: seed)
        guard FileManager.default.fileExists(atPath: path), let steps = config.variant(variant)?.steps else { return .notStarted }
        let file = try SafeTensors.read(path: path)
        guard let text = file.metadata[Naming.stepKey], let step = Int(text), step >= 0 else {
            throw DiffusionError("experiment: \(path) has no valid step count ('\(Naming.stepKey)' in its header)")
        }
        return step >= steps ? .finished : .atStep(step, of: steps)
    }

    /// Whether another process holds `variant`'s training lock for `seed` (its run folder's
    /// `TrainingRun` lock); a missing lock file is not created.
    func isTrainingNow(_ variant: String, seed: UInt64) throws -> Bool {
        let path = TrainingRun.lockPath(directory: runFolder(variant, seed: seed))
        guard FileManager.default.fileExists(atPath: path) else { return false }
        guard let lock = try FileLock.tryAcquire(path) else { return true }
        lock.release()
        return false
    }
}
