/// A Markdown table of a study report: a header row, its alignment row, then the data rows. A `|`
/// inside a cell (a row label from the config, say) is escaped so that it cannot split the cell.
struct MarkdownTable {
    /// How a column's cells align: text left, numbers right.
    enum Alignment { case left, right }

    private let titles: [String]
    private let alignments: [Alignment]
    private var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        titles = columns.map(\.0)
        alignments = columns.map(\.1)
    }

    /// Appends a row; it has a cell for every column.
    mutating func add(_ cells: [String]) {
        precondition(cells.count == titles.count, "a table row needs \(titles.count) cells, not \(cells.count)")
        rows.append(cells)
    }

    /// The table's lines, header first.
    var lines: [String] {
        let rule = "|" + alignments.map { $0 == .left ? "---" : "---:" }.joined(separator: "|") + "|"
        return [Self.row(titles), rule] + rows.map(Self.row)
    }

    static func row(_ cells: [String]) -> String {
        "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
    }
}
