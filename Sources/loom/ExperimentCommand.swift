import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom experiment`: a whole study from a JSON config.
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Run a study from a JSON config: train variants, sample, evaluate, write results.md and PNG grids.",
        discussion: """
            Each training variant is trained once into <out>/<name>/ (a finished checkpoint is reused, an unfinished \
            one resumed). Each row samples the same number of images with the same seed (labels cycling over the \
            classes), is scored with the classifier (FID-FM, precision, recall, conditional accuracy), and gets a \
            grid <out>/<row>.png; <out>/results.md collects the table. See Benchmarks/study/*.json.
            """)

    @Argument(help: "Experiment config (JSON).") var file: String
    @Option(help: "Run only this row (repeatable); earlier results of other rows are kept.") var only: [String] = []
    @Option(help: "A part of the study: only the rows whose training variants are all among these (comma-separated); results of other parts are kept.")
    var variants: String?
    @Option(help: "A part of the study: only these of the study's seeds (comma-separated).") var seeds: String?
    @Flag(help: "Only prepare the feature spaces (train missing classifiers, compute reference statistics), then stop: parts started afterwards may run at the same time.")
    var prepareOnly = false
    @Flag(help: "Print which parts of the study are done, under way (training step reached) or not started, and the command for each part still to run; runs and writes nothing.")
    var status = false
    @Flag(help: "Write results.md again from the recorded results.json (after a change to the config's comparisons, say); runs nothing.")
    var report = false
    @Option(help: "With --report: a Markdown page that shows the study's claims table and table of row means; both are replaced with the fresh ones, the rest of the page is kept.")
    var page: String?
    @Option(help: "Threads (default: the config's, else LOOM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
        _ = try chosenVariants()
        _ = try chosenSeeds()
        if status, !runFlagsGiven.isEmpty {
            throw ValidationError("--status reports on the whole study: it takes no \(runFlagsGiven.joined(separator: ", "))")
        }
        if report, status || !runFlagsGiven.isEmpty {
            let given = (status ? ["--status"] : []) + runFlagsGiven
            throw ValidationError("--report rewrites the whole study's results.md: it takes no \(given.joined(separator: ", "))")
        }
        if page != nil && !report { throw ValidationError("--page is updated by --report only; add --report") }
    }

    /// The flags given that choose or tune a run of the study; `--status` and `--report` take none.
    var runFlagsGiven: [String] {
        [("--only", !only.isEmpty), ("--variants", variants != nil), ("--seeds", seeds != nil),
         ("--prepare-only", prepareOnly), ("--threads", threads != nil)].filter(\.1).map(\.0)
    }

    /// The items of a comma-separated flag value, trimmed; a value that names nothing is an error.
    static func list(_ text: String, flag: String) throws -> [String] {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("\(flag) '\(text)' names nothing (expected a comma-separated list)") }
        return items
    }

    /// The variants `--variants` names, if given.
    func chosenVariants() throws -> [String]? { try variants.map { try Self.list($0, flag: "--variants") } }

    /// The seeds `--seeds` names, if given.
    func chosenSeeds() throws -> [UInt64]? {
        try seeds.map { text in
            try Self.list(text, flag: "--seeds").map { item in
                guard let seed = UInt64(item) else { throw ValidationError("--seeds: '\(item)' is not a seed (expected e.g. --seeds 0,1)") }
                return seed
            }
        }
    }

    func run() throws {
        do {
            var config = try ExperimentConfig.load(path: file)
            if let threads { config.threads = threads }
            var command = "loom experiment \(file)"
            for row in only { command += " --only '\(row)'" }
            let runner = ExperimentRunner(config: config, command: command) { print($0); fflush(stdout) }
            if status {
                print(try runner.status().report(configPath: file))
                return
            }
            if report {
                for path in try runner.rewriteReport(page: page) { print("wrote \(path)") }
                return
            }
            if prepareOnly {
                try runner.prepareFeatureSpaces()
                print("feature spaces ready: \(config.classifier)" + (config.secondClassifier.map { ", \($0)" } ?? ""))
                return
            }
            try runner.run(only: only.isEmpty ? nil : only, variants: chosenVariants(), seeds: chosenSeeds())
            print("wrote \(runner.resultsMarkdownPath)")
        } catch let error as DiffusionError {
            throw ValidationError(error.message)
        } catch let stopped as Interruption.Stopped {
            FileHandle.standardError.write(Data((stopped.message + "\n").utf8))
            throw ExitCode(130)
        }
    }
}
