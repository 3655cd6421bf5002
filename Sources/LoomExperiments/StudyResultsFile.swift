import Foundation
import LoomData
import LoomRuntime

/// results.json and results.md of a study: read back, and merged with what other parts recorded.
extension ExperimentRunner {
    /// The results recorded so far (none when results.json does not exist yet). A results.json
    /// that cannot be read is an error, never "no results": the next write would replace every
    /// recorded row with this run's.
    func loadResults() throws -> [ExperimentResult] {
        let path = resultsJSONPath
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DiffusionError("experiment: cannot read \(path)")
        }
        do {
            return try JSONDecoder().decode([ExperimentResult].self, from: data)
        } catch {
            throw DiffusionError("experiment: \(path) is not a results file of `loom experiment` (\(JSONFileError.describe(error))); "
                                 + "repair it, or move it away to start the study's results afresh")
        }
    }

    /// Records this run's `results` in results.json and results.md. Parts of a study may run at
    /// the same time into one results folder: under an exclusive lock, the file is read again and
    /// every (row, seed) this run did not produce is kept as the file has it.
    @discardableResult
    func writeResults(_ results: [ExperimentResult]) throws -> String {
        let lock = try FileLock.acquire(resultsFolder + "/.results.lock")
        defer { lock.release() }
        var merged = try loadResults().filter { other in !results.contains { $0.label == other.label && $0.seed == other.seed } }
        merged += results
        // Config order and seed order, then any rows no longer in the config.
        let order = config.rows.map(\.label), seeds = config.studySeeds
        let sorted = merged.sorted {
            (order.firstIndex(of: $0.label) ?? Int.max, $0.label, seeds.firstIndex(of: $0.seed) ?? Int.max)
                < (order.firstIndex(of: $1.label) ?? Int.max, $1.label, seeds.firstIndex(of: $1.seed) ?? Int.max)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(sorted).write(to: URL(fileURLWithPath: resultsJSONPath), options: .atomic)
        let markdown = StudyReport(config: config, command: command, results: sorted).markdown()
        try markdown.write(toFile: resultsMarkdownPath, atomically: true, encoding: .utf8)
        return markdown
    }

    /// Writes results.md again from the recorded results.json without running anything (after a
    /// change to the config's comparisons or to the report's format), and, given `page`, replaces
    /// the summary tables that page shows with the fresh ones (`StudyPage`). Returns the paths written.
    public func rewriteReport(page: String? = nil) throws -> [String] {
        guard FileManager.default.fileExists(atPath: resultsJSONPath) else {
            throw DiffusionError("experiment: no results recorded yet in \(resultsJSONPath); run a part of the study first")
        }
        var pageText: String?
        if let page {
            if let problem = FileKind.problem(with: page) {
                throw DiffusionError("experiment: --page \(page) " + (problem == .missing ? "does not exist (the page is updated, never created)" : "\(problem)"))
            }
            for own in [resultsJSONPath, resultsMarkdownPath] where SameFile.check(page, own) {
                throw DiffusionError("experiment: --page \(page) is the study's own results file \(own); name the hand-written page that shows its tables")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: page)[.size] as? Int) ?? 0
            guard size <= StudyPage.maxBytes else {
                throw DiffusionError("experiment: --page \(page) is \(size) bytes; a Markdown page over \(StudyPage.maxBytes) bytes is refused")
            }
            pageText = try String(data: FileKind.contents(of: page), encoding: .utf8)
            guard pageText != nil else { throw DiffusionError("experiment: --page \(page) is not UTF-8 text") }
        }
        let report = try writeResults([])
        guard let page, let old = pageText else { return [resultsMarkdownPath] }
        // Written through a link: a page that is a symbolic link stays one, and its target is updated.
        let target = URL(fileURLWithPath: page).resolvingSymlinksInPath().path
        try StudyPage.updated(page: old, from: report, pageName: page).write(toFile: target, atomically: true, encoding: .utf8)
        return [resultsMarkdownPath, page]
    }
}
