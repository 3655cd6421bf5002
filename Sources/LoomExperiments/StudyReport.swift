import Foundation
import LoomEvaluation

/// results.md of a study: every (row, seed) result; with several seeds, a verdict per claim, each
/// row's mean ± standard deviation over seeds and the configured paired comparisons with their
/// bootstrap and t intervals.
struct StudyReport {
    let config: ExperimentConfig
    let command: String
    /// In config and seed order.
    let results: [ExperimentResult]

    func markdown() -> String {
        let seeds = config.studySeeds
        var lines = [
            "# Experiment results", "",
            "Command: `\(command)`", "",
            String(format: "Sampler: %@, %d steps; %d samples per row (labels cycling over the classes); seeds %@; classifier `%@`.",
                   (config.sampler.kind ?? .euler).rawValue, config.sampler.steps, config.samples,
                   seeds.map(String.init).joined(separator: ", "), config.classifier),
            "",
        ]
        let expected = config.rows.count * seeds.count
        if results.count < expected {
            lines += ["**Incomplete:** \(results.count) of \(expected) (row, seed) results recorded so far; the study runs in parts.", ""]
        }
        if seeds.count > 1 {
            let measured = (config.comparisons ?? []).map { ($0, differences($0)) }
            lines += claims(measured) + summary() + comparisons(measured) + ["## Every seed", ""]
        }
        var table = MarkdownTable([("row", .left), ("variant", .left), ("guidance", .left), ("seed", .right),
                                   ("FID-FM ↓", .right), ("FID, 2nd space ↓", .right), ("precision ↑", .right),
                                   ("recall ↑", .right), ("cond. acc. ↑", .right), ("sampling s", .right), ("machine", .left)])
        for r in results {
            table.add([r.label, r.training, r.guidance, "\(r.seed)", Self.fid(r.report), r.secondReport.map(Self.fid) ?? "–",
                       String(format: "%.4f", r.report.precision), String(format: "%.4f", r.report.recall),
                       String(format: "%.4f", r.report.conditionalAccuracy), String(format: "%.2f", r.samplingSeconds),
                       r.machine ?? "–"])
        }
        lines += table.lines
        lines += ["", "Training variants:", ""]
        for v in config.training {
            let t = v.trainingConfig(seed: seeds[0])
            // λ and ω weigh the auxiliary head's losses: a model without a head has neither.
            let head = t.model.igLayer == nil ? "" : "λ \(t.loss.igLambda), ω \(t.loss.omega), "
            lines.append("- `\(v.name)`: \(t.model.displayName), \(t.loss.objective.rawValue), \(head)"
                         + "\(t.steps) steps × batch \(t.batch), lr \(t.learningRate)")
        }
        lines.append("")
        return lines.joined(separator: "\n")
    }

    /// Columns of the table of row means (`summary()`).
    static let summaryColumns: [(String, MarkdownTable.Alignment)] = [
        ("row", .left), ("variant", .left), ("guidance", .left), ("seeds", .right), ("FID-FM ↓", .right),
        ("FID, 2nd space ↓", .right), ("precision ↑", .right), ("recall ↑", .right), ("cond. acc. ↑", .right)]

    /// Columns of the claims table (`claims(_:)`).
    static let claimColumns: [(String, MarkdownTable.Alignment)] = [
        ("claim", .left), ("condition", .left), ("a", .left), ("b", .left), ("expected", .left),
        ("seeds", .right), ("FID-FM", .left), ("FID, 2nd space", .left), ("verdict", .left)]

    /// `12.345 ± 0.210` (the bootstrap standard error over samples), or the value alone.
    static func fid(_ report: EvaluationReport) -> String {
        report.fidStandardError.map { String(format: "%.3f ± %.3f", report.fidFM, $0) } ?? String(format: "%.3f", report.fidFM)
    }

    /// Mean ± sample standard deviation over seeds, per row (the value alone for a row with one seed).
    func summary() -> [String] {
        var table = MarkdownTable(Self.summaryColumns)
        for row in config.rows {
            let mine = results.filter { $0.label == row.label }
            guard let first = mine.first else { continue }
            // One seed has no standard deviation: its value stands alone.
            func stat(_ value: (ExperimentResult) -> Double, _ digits: Int) -> String {
                let (mean, sd) = StudyStatistics.meanAndDeviation(mine.map(value))
                return mine.count < 2 ? String(format: "%.\(digits)f", mean) : String(format: "%.\(digits)f ± %.\(digits)f", mean, sd)
            }
            let second = mine.allSatisfy { $0.secondReport != nil } ? stat({ $0.secondReport!.fidFM }, 3) : "–"
            table.add([row.label, first.training, first.guidance, "\(mine.count)", stat({ $0.report.fidFM }, 3), second,
                       stat({ $0.report.precision }, 4), stat({ $0.report.recall }, 4), stat({ $0.report.conditionalAccuracy }, 4)])
        }
        return ["## Mean ± standard deviation over seeds", ""] + table.lines + [""]
    }

    /// A comparison's paired FID difference (a − b over the seeds both rows have) in each feature
    /// space with results: FID-FM, then the second space.
    func differences(_ c: ExperimentConfig.Comparison) -> [(space: String, difference: StudyStatistics.PairedDifference)] {
        func fid(_ label: String, _ space: (ExperimentResult) -> EvaluationReport?) -> [UInt64: Double] {
            Dictionary(results.filter { $0.label == label }.compactMap { r in space(r).map { (r.seed, $0.fidFM) } },
                       uniquingKeysWith: { a, _ in a })
        }
        let spaces: [(String, (ExperimentResult) -> EvaluationReport?)] = [("FID-FM", { $0.report }), ("2nd", { $0.secondReport })]
        return spaces.compactMap { name, space in
            StudyStatistics.pairedDifference(fid(c.a, space), fid(c.b, space)).map { (name, $0) }
        }
    }

    /// A configured comparison with its paired differences (`differences(_:)`), computed once for
    /// both tables that show them.
    typealias Measured = (comparison: ExperimentConfig.Comparison, found: [(space: String, difference: StudyStatistics.PairedDifference)])

    /// One line per comparison, grouped by claim (in the order each claim first appears; the claim
    /// is written on its group's first line): the difference in each space with its t interval, and
    /// the verdict.
    func claims(_ measured: [Measured]) -> [String] {
        guard !measured.isEmpty else { return [] }
        var table = MarkdownTable(Self.claimColumns)
        var claimOrder: [String] = []
        for (c, _) in measured where !claimOrder.contains(c.claimText) { claimOrder.append(c.claimText) }
        for claim in claimOrder {
            for (index, (c, found)) in measured.filter({ $0.comparison.claimText == claim }).enumerated() {
                func cell(_ space: String) -> String {
                    guard let d = found.first(where: { $0.space == space })?.difference else { return "–" }
                    return d.pairs < 2 ? String(format: "%+.3f (one seed)", d.mean)
                        : String(format: "%+.3f [%+.3f, %+.3f]", d.mean, d.tLow, d.tHigh)
                }
                let seeds = found.first.map { "\($0.difference.pairs)" } ?? "0"
                let verdict = StudyStatistics.claimVerdict(found.map(\.difference.direction), expect: c.expect)
                let expected = c.expect.map { $0 == .neither ? "no difference" : "a \($0.rawValue)" } ?? "–"
                let cells = [index == 0 ? claim : "", c.condition ?? "–", c.a, c.b, expected, seeds,
                             cell("FID-FM"), cell("2nd"), "**\(verdict)**"]
                table.add(cells)
            }
        }
        return ["## Claims (FID a − b by seed, mean [95% t interval])", ""] + table.lines
            + ["", "A claim holds when every feature space decides in the expected direction (both its bootstrap "
                         + "and its t interval clear of 0), does not hold when every space decides the other way, and is "
                         + "undecided otherwise; the intervals of each space are in the next table.", ""]
    }

    /// Paired FID differences (a − b) with 95% percentile-bootstrap and Student-t intervals over seeds.
    func comparisons(_ measured: [Measured]) -> [String] {
        guard !measured.isEmpty else { return [] }
        var table = MarkdownTable([("claim", .left), ("a", .left), ("b", .left), ("space", .left), ("seeds", .right),
                                   ("a − b", .right), ("95% bootstrap", .left), ("95% t", .left), ("a is", .left)])
        for (c, found) in measured {
            for (name, d) in found {
                table.add([c.label, c.a, c.b, name, "\(d.pairs)", String(format: "%+.3f", d.mean),
                           String(format: "[%+.3f, %+.3f]", d.low, d.high), String(format: "[%+.3f, %+.3f]", d.tLow, d.tHigh),
                           d.verdict])
            }
            if found.isEmpty { table.add([c.label, c.a, c.b, "–", "0", "–", "–", "–", "not run"]) }
        }
        return ["## Paired comparisons (FID, a − b, by seed; 95% intervals over seeds)", ""] + table.lines + ["", "\"lower\" or \"higher\": both intervals lie wholly on that side of 0; otherwise undecided. "
                         + "Over a few seeds the bootstrap interval spans only the seeds' own differences (with three, "
                         + "it excludes 0 whenever all three share a sign, as noise alone does one time in four), so "
                         + "the Student-t interval must agree. A claim holds only where both feature spaces agree.", ""]
    }
}
