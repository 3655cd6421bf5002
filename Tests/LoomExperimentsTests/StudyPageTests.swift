import Foundation
import LoomData
import LoomExperiments
import LoomTestSupport
import XCTest

/// A hand-written page that shows a study's summary tables: `--report --page` replaces exactly
/// those tables with the ones the recorded results give, and keeps every other line.
final class StudyPageTests: TemporaryDirectoryTestCase {
    private let report = """
        # Experiment results

        | claim | condition | a | b |
        |---|---|---|---|
        | IG helps | λ 0.1 | IG | aux |
        | | λ 0.5 | IG' | aux' |

        ## Mean

        | row | variant | guidance | seeds | FID-FM ↓ |
        |---|---|---|---:|---:|
        | vanilla | vanilla | none | 3 | 2.236 ± 0.045 |
        """

    func testOnlyTheTablesAreReplaced() throws {
        let page = """
            # Results

            Prose before.

            | claim | condition | a | b |
            |---|---|---|---|
            | IG helps | λ 0.1 | IG | stale |

            Prose between, with a table of its own:

            | row | other |
            |---|---|
            | x | y |

            | row | variant | guidance | seeds | FID-FM ↓ |
            |---|---|---|---:|---:|
            | vanilla | vanilla | none | 2 | 9.999 ± 0.001 |
            | gone | vanilla | none | 1 | 1.000 |

            Prose after.

            """
        let updated = try StudyPage.updated(page: page, from: report, pageName: "results page")
        let reportLines = report.components(separatedBy: "\n")
        XCTAssertTrue(updated.contains(reportLines[2...5].joined(separator: "\n") + "\n\nProse between"), updated)
        XCTAssertTrue(updated.contains("| x | y |\n\n" + reportLines[9...11].joined(separator: "\n") + "\n\nProse after.\n"), updated)
        XCTAssertFalse(updated.contains("stale") || updated.contains("9.999") || updated.contains("gone"), updated)
        XCTAssertTrue(updated.hasPrefix("# Results\n\nProse before.\n\n"), updated)
        XCTAssertEqual(try StudyPage.updated(page: updated, from: report, pageName: "results page"), updated,
                       "a page that shows the tables is left as it is")
    }

    func testAPageWithoutTheTableIsRefusedNotAppended() {
        assertError(["notes.md has no table whose header starts with '| row | variant | guidance | seeds |'"]) {
            _ = try StudyPage.updated(page: "| claim | condition | a | b |\n|---|---|---|---|\n", from: report, pageName: "notes.md")
        }
    }

    /// `rewriteReport` renders results.md from results.json alone and updates the page it is given;
    /// it refuses a missing results file, a page that does not exist, and the results files themselves.
    func testRewriteReportFromTheRecordedResults() throws {
        let root = RepositoryPaths.root
        var config = try ExperimentConfig.load(path: root.appendingPathComponent("Benchmarks/study/ig-study-seeds.json").path)
        config.out = directory + "/runs"
        config.results = directory + "/results"
        let runner = ExperimentRunner(config: config, command: "loom experiment study.json") { _ in }
        assertError(["no results recorded yet in \(runner.resultsJSONPath)"]) { _ = try runner.rewriteReport() }

        try FileManager.default.createDirectory(atPath: runner.resultsFolder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: root.appendingPathComponent("Docs/results/ig-study-seeds/results.json"),
                                         to: URL(fileURLWithPath: runner.resultsJSONPath))
        let page = directory + "/page.md"
        assertError(["--page \(page) does not exist"]) { _ = try runner.rewriteReport(page: page) }
        assertError(["--page \(directory) is a directory"]) { _ = try runner.rewriteReport(page: directory) }
        let link = directory + "/link.md"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: runner.resultsJSONPath)
        for own in [runner.resultsJSONPath, link] {
            assertError(["--page \(own) is the study's own results file \(runner.resultsJSONPath)"]) { _ = try runner.rewriteReport(page: own) }
        }
        try Data(count: StudyPage.maxBytes + 1).write(to: URL(fileURLWithPath: page))
        assertError(["--page \(page) is \(StudyPage.maxBytes + 1) bytes"]) { _ = try runner.rewriteReport(page: page) }
        try Data([0x7C, 0xFF, 0xFE]).write(to: URL(fileURLWithPath: page))
        assertError(["--page \(page) is not UTF-8 text"]) { _ = try runner.rewriteReport(page: page) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: runner.resultsMarkdownPath), "refused calls write nothing")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: runner.resultsJSONPath)),
                       try Data(contentsOf: root.appendingPathComponent("Docs/results/ig-study-seeds/results.json")),
                       "results.json is never replaced by a page")

        let stale = "Intro.\n\n| claim | condition |\n|---|---|\n| old | old |\n\nMiddle.\n\n| row | variant | guidance | seeds |\n|---|---|\n| old |\n\nEnd.\n"
        try stale.write(toFile: page, atomically: true, encoding: .utf8)
        XCTAssertEqual(try runner.rewriteReport(page: page), [runner.resultsMarkdownPath, page])
        let markdown = try String(contentsOfFile: runner.resultsMarkdownPath, encoding: .utf8)
        XCTAssertTrue(markdown.hasPrefix("# Experiment results\n\nCommand: `loom experiment study.json`\n"), markdown)
        let updated = try String(contentsOfFile: page, encoding: .utf8)
        let lines = markdown.components(separatedBy: "\n")
        for header in StudyPage.tableHeaders {
            let table = try XCTUnwrap(StudyPage.table(startingWith: header, in: lines), header)
            XCTAssertGreaterThan(table.count, 3, header)
            XCTAssertTrue(updated.contains("\n\n" + table.joined(separator: "\n") + "\n\n"), header)
        }
        XCTAssertTrue(updated.hasPrefix("Intro.\n\n") && updated.contains("\n\nMiddle.\n\n") && updated.hasSuffix("\n\nEnd.\n"), updated)
        XCTAssertFalse(updated.contains("| old |"), updated)

        // A page reached through a symbolic link is updated where it lives; the link stays a link.
        let real = directory + "/real-page.md", pageLink = directory + "/page-link.md"
        try stale.write(toFile: real, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: pageLink, withDestinationPath: real)
        _ = try runner.rewriteReport(page: pageLink)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: pageLink), real)
        XCTAssertEqual(try String(contentsOfFile: real, encoding: .utf8), updated)
    }
}
