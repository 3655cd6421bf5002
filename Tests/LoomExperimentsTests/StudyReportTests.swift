import Foundation
@testable import LoomExperiments
import LoomTestSupport
import XCTest

/// The claims of a study report: each claim's verdict from its comparisons in both feature spaces.
final class StudyReportTests: XCTestCase {
    func testClaimVerdicts() {
        typealias E = ExperimentConfig.Comparison.Expectation
        typealias D = StudyStatistics.PairedDifference.Direction
        let cases: [([D], E?, String)] = [
            ([], .lower, "not run"),
            ([.lower, .lower], .lower, "holds"),
            ([.higher, .higher], .lower, "does not hold (a higher in both spaces)"),
            ([.higher, .higher], .higher, "holds"),
            ([.lower, .undecided], .lower, "undecided"),
            ([.lower, .higher], .lower, "undecided"),
            ([.higher, .undecided], .lower, "undecided"),
            ([.oneSeed, .oneSeed], .lower, "undecided (one seed)"),
            ([.lower], .lower, "holds"),
            ([.higher], .lower, "does not hold (a higher in its space)"),
            ([.undecided, .undecided], .neither, "holds (no difference found)"),
            ([.undecided, .higher], .neither, "does not hold"),
            ([.lower, .lower], nil, "a lower in both spaces"),
            ([.lower, .undecided], nil, "undecided"),
        ]
        for (spaces, expect, verdict) in cases {
            XCTAssertEqual(StudyStatistics.claimVerdict(spaces, expect: expect), verdict, "\(spaces), \(String(describing: expect))")
        }
    }

    /// The seeded study's recorded results (three seeds of the head after block 2 of 6 with
    /// λ = 0.1): IG beats its own unguided model in both spaces, so that claim holds; the
    /// sampling-noise floor finds no difference. A claim's conditions share one group.
    func testClaimsOfTheRecordedSeededStudy() throws {
        let markdown = try recordedStudyReport()
        let lines = markdown.components(separatedBy: "\n")
        let ownModel = "| IG improves on the same model without guidance (w = 2) | head after block 2 of 6, λ 0.1 | "
            + "IG w=2 l2 λ0.1 | aux l2 λ0.1 | a lower | 3 | -1.183 [-1.277, -1.089] |"
        guard let first = lines.firstIndex(where: { $0.hasPrefix(ownModel) }) else { return XCTFail(markdown) }
        XCTAssertTrue(lines[first].hasSuffix("| **holds** |"), lines[first])
        XCTAssertTrue(lines[first + 1].hasPrefix("|  | head after block 2 of 6, λ 0.5 | IG w=2 l2 λ0.5 |"), lines[first + 1])
        XCTAssertEqual(lines.filter { $0.hasPrefix("| IG vs its own unguided model | ") }.count, 2,
                       "one detail line per feature space\n\(markdown)")
        XCTAssertTrue(lines.contains { $0.contains("| vanilla, sampling seeds s and s + 1000 | vanilla (resampled) | vanilla | no difference | 3 |")
                                       && $0.hasSuffix("**holds (no difference found)** |") }, markdown)
    }

    /// Docs/results.md shows the claims table and the table of row means that the recorded results
    /// give, line for line.
    func testResultsPageShowsTheRecordedTables() throws {
        let report = try recordedStudyReport().components(separatedBy: "\n")
        let page = try String(contentsOf: RepositoryPaths.root.appendingPathComponent("Docs/results.md"), encoding: .utf8)
            .components(separatedBy: "\n")
        for header in StudyPage.tableHeaders {
            let recorded = try XCTUnwrap(StudyPage.table(startingWith: header, in: report), header)
            let shown = try XCTUnwrap(StudyPage.table(startingWith: header, in: page), "Docs/results.md has no table \(header)")
            XCTAssertEqual(shown.joined(separator: "\n"), recorded.joined(separator: "\n"),
                           "Docs/results.md must show this table of the recorded results; `loom experiment "
                           + "Benchmarks/study/ig-study-seeds.json --report --page Docs/results.md` copies it")
        }
    }

    /// A row with one seed so far shows its value without a standard deviation.
    func testOneSeedRowHasNoDeviation() throws {
        let lines = try recordedStudyReport(keeping: { $0.label != "vanilla" || $0.seed == 0 }).components(separatedBy: "\n")
        let vanilla = try XCTUnwrap(lines.first { $0.hasPrefix("| vanilla | vanilla | none | 1 | ") })
        XCTAssertFalse(vanilla.contains("±"), vanilla)
        XCTAssertTrue(lines.contains { $0.hasPrefix("| vanilla (resampled) | vanilla | none | 3 | ") && $0.contains(" ± ") })
    }

    /// λ and ω are listed only for variants with an auxiliary head.
    func testHeadWeightsOnlyForHeadModels() throws {
        let lines = try recordedStudyReport().components(separatedBy: "\n")
        XCTAssertTrue(lines.contains("- `vanilla`: SiT-6x128x4/4, flow_repa, 19000 steps × batch 32, lr 0.0005"), lines.suffix(12).joined(separator: "\n"))
        XCTAssertTrue(lines.contains("- `accel-l2-omega0.5`: SiT-6x128x4/4+IG@2, flow_repa, λ 0.5, ω 0.5, 19000 steps × batch 32, lr 0.0005"),
                      lines.suffix(12).joined(separator: "\n"))
    }

    func testTableCellsCannotSplit() {
        XCTAssertEqual(MarkdownTable.row(["a|b", "", "c"]), "| a\\|b |  | c |")
    }

    /// The report of the repository's study config over its recorded results (those `keeping` keeps).
    private func recordedStudyReport(keeping: (ExperimentResult) -> Bool = { _ in true }) throws -> String {
        let root = RepositoryPaths.root
        let config = try ExperimentConfig.load(path: root.appendingPathComponent("Benchmarks/study/ig-study-seeds.json").path)
        let data = try Data(contentsOf: root.appendingPathComponent("Docs/results/ig-study-seeds/results.json"))
        let results = try JSONDecoder().decode([ExperimentResult].self, from: data).filter(keeping)
        return StudyReport(config: config, command: "test", results: results).markdown()
    }
}
