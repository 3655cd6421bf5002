import Foundation
import LoomData

/// A hand-written Markdown page that shows a study's summary tables (the claims and the row means)
/// verbatim beside its prose: `updated(page:from:)` replaces each such table with the one a
/// freshly rendered results.md has, and leaves every other line of the page as it was.
public enum StudyPage {
    /// How each summary table's header row begins, in results.md and in the page alike: the
    /// report's own leading column titles, enough to tell the tables apart ("seeds" sets the row
    /// means apart from the every-seed table's "seed"), so that a later column may change and the
    /// page's old table is still found and replaced.
    public static let tableHeaders = [MarkdownTable.row(StudyReport.claimColumns.prefix(2).map(\.0)),
                                      MarkdownTable.row(StudyReport.summaryColumns.prefix(4).map(\.0))]

    /// The largest page `--page` reads (16 MiB): a study page is a few dozen kilobytes.
    public static let maxBytes = 16 << 20

    /// The lines of the table whose header starts with `header`, up to the blank line (or the end)
    /// after it; nil when `lines` has no such table.
    public static func table(startingWith header: String, in lines: [String]) -> ArraySlice<String>? {
        guard let start = lines.firstIndex(where: { $0.hasPrefix(header) }) else { return nil }
        let end = lines[start...].firstIndex(of: "") ?? lines.endIndex
        return lines[start..<end]
    }

    /// `page` with each summary table replaced by the one in `report` (a study's results.md).
    /// A table that the report has and the page lacks is an error naming `pageName`: the page
    /// decides where its tables go, so they are never appended.
    public static func updated(page: String, from report: String, pageName: String) throws -> String {
        let reportLines = report.components(separatedBy: "\n")
        var lines = page.components(separatedBy: "\n")
        for header in tableHeaders {
            guard let fresh = table(startingWith: header, in: reportLines) else { continue }
            guard let old = table(startingWith: header, in: lines) else {
                throw DiffusionError("experiment: \(pageName) has no table whose header starts with '\(header)'; "
                                     + "put the table of the study's results.md where the page should show it, then rerun")
            }
            lines.replaceSubrange(old.indices, with: fresh)
        }
        return lines.joined(separator: "\n")
    }
}
