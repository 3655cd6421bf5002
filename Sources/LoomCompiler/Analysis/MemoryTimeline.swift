import Foundation

/// Bytes in use after each kernel launch, optionally labelled with the block that launched it,
/// rendered as CSV or as a self-contained SVG step plot (hand-written, no dependencies).
public struct MemoryTimeline: Sendable {
    /// Bytes in use after one launch, and the block that launched it where known.
    public struct Point: Equatable, Sendable {
        public var launch: Int
        public var bytes: Int
        public var block: String?
    }

    public var title: String
    public private(set) var points: [Point]

    /// `labels`, when given, holds one block label per point (missing entries stay unlabelled).
    public init(points: [(launch: Int, bytes: Int)], labels: [String]? = nil, title: String = "Memory in use") {
        self.title = title
        self.points = points.enumerated().map { i, p in
            Point(launch: p.launch, bytes: p.bytes, block: labels.flatMap { i < $0.count ? $0[i] : nil })
        }
    }

    /// The largest byte count, 0 when empty.
    public var peakBytes: Int { points.map(\.bytes).max() ?? 0 }

    /// `launch,bytes,block` then one row per point (labels quoted when they need it).
    public func csv() -> String {
        var lines = ["launch,bytes,block"]
        for p in points { lines.append("\(p.launch),\(p.bytes),\(MemoryTimeline.csvField(p.block ?? ""))") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Runs of consecutive points with the same (non-nil) label: (label, first index, last index).
    public var blockSpans: [(block: String, first: Int, last: Int)] {
        var spans: [(block: String, first: Int, last: Int)] = []
        for (i, p) in points.enumerated() {
            guard let block = p.block else { continue }
            if let last = spans.last, last.block == block, last.last == i - 1 {
                spans[spans.count - 1].last = i
            } else {
                spans.append((block, i, i))
            }
        }
        return spans
    }
}
