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
    /// sampling-noise floor finds no difference.
    func testClaimsOfTheRecordedSeededStudy() throws {
        let root = RepositoryPaths.root
        let config = try ExperimentConfig.load(path: root.appendingPathComponent("Benchmarks/study/ig-study-seeds.json").path)
        let data = try Data(contentsOf: root.appendingPathComponent("Docs/results/ig-study-seeds/results.json"))
        let results = try JSONDecoder().decode([ExperimentResult].self, from: data)
        let markdown = StudyReport(config: config, command: "test", results: results).markdown()
        let claims = markdown.components(separatedBy: "\n").filter { $0.hasPrefix("| IG vs its own unguided model | ") }
        XCTAssertEqual(claims.count, 3, "one claims line and one detail line per space\n\(markdown)")
        XCTAssertTrue(claims.contains { $0.contains("| a lower | 3 | -1.183 [-1.277, -1.089] |") && $0.hasSuffix("| **holds** |") },
                      "\(claims)")
        XCTAssertTrue(markdown.contains("| sampling-noise floor | vanilla (resampled) | vanilla | no difference | 3 |")
                      && markdown.contains("**holds (no difference found)** |"), markdown)
    }
}
