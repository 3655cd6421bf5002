import Foundation
import LoomIR

/// A per-block profile of a graph: parameters, forward and backward MACs/FLOPs (`CostModel`),
/// activation bytes saved for the backward pass, and optionally measured time and peak transient
/// memory filled in from a real run. Blocks and directions come from `BlockAttribution`.
public struct BlockProfile: Equatable, Sendable, Codable {
    /// One block's figures.
    public struct Row: Equatable, Sendable, Codable {
        public var block: String
        /// Elements of the block's trainable parameters.
        public var trainableParams: Int
        /// Elements of frozen parameters (e.g. `pos_embed`); not RoPE tables, not optimizer state.
        public var frozenParams: Int
        public var forwardMACs: Int
        public var forwardFLOPs: Int
        public var backwardMACs: Int
        public var backwardFLOPs: Int
        /// Bytes of the block's forward values that a backward node reads (views resolved to the
        /// value they alias, each value counted once).
        public var savedBytes: Int
        /// Peak transient bytes measured while the block ran, if known.
        public var peakTransientBytes: Int?
        /// Measured seconds spent in the block, if known.
        public var seconds: Double?

        public init(block: String, trainableParams: Int = 0, frozenParams: Int = 0, forwardMACs: Int = 0,
                    forwardFLOPs: Int = 0, backwardMACs: Int = 0, backwardFLOPs: Int = 0, savedBytes: Int = 0,
                    peakTransientBytes: Int? = nil, seconds: Double? = nil) {
            self.block = block
            self.trainableParams = trainableParams
            self.frozenParams = frozenParams
            self.forwardMACs = forwardMACs
            self.forwardFLOPs = forwardFLOPs
            self.backwardMACs = backwardMACs
            self.backwardFLOPs = backwardFLOPs
            self.savedBytes = savedBytes
            self.peakTransientBytes = peakTransientBytes
            self.seconds = seconds
        }

        /// Trainable plus frozen parameter elements.
        public var params: Int { trainableParams + frozenParams }
        public var totalMACs: Int { forwardMACs + backwardMACs }
        public var totalFLOPs: Int { forwardFLOPs + backwardFLOPs }
        /// Achieved GFLOP/s (forward plus backward FLOPs over the measured time), if measured.
        public var gflopsPerSecond: Double? {
            guard let seconds, seconds > 0 else { return nil }
            return Double(totalFLOPs) / seconds / 1e9
        }

        enum CodingKeys: String, CodingKey {
            case block, params, trainableParams, frozenParams, forwardMACs, forwardFLOPs, backwardMACs
            case backwardFLOPs, savedBytes, peakTransientBytes, seconds, gflopsPerSecond
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(block: try c.decode(String.self, forKey: .block),
                      trainableParams: try c.decode(Int.self, forKey: .trainableParams),
                      frozenParams: try c.decode(Int.self, forKey: .frozenParams),
                      forwardMACs: try c.decode(Int.self, forKey: .forwardMACs),
                      forwardFLOPs: try c.decode(Int.self, forKey: .forwardFLOPs),
                      backwardMACs: try c.decode(Int.self, forKey: .backwardMACs),
                      backwardFLOPs: try c.decode(Int.self, forKey: .backwardFLOPs),
                      savedBytes: try c.decode(Int.self, forKey: .savedBytes),
                      peakTransientBytes: try c.decodeIfPresent(Int.self, forKey: .peakTransientBytes),
                      seconds: try c.decodeIfPresent(Double.self, forKey: .seconds))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(block, forKey: .block)
            try c.encode(params, forKey: .params)
            try c.encode(trainableParams, forKey: .trainableParams)
            try c.encode(frozenParams, forKey: .frozenParams)
            try c.encode(forwardMACs, forKey: .forwardMACs)
            try c.encode(forwardFLOPs, forKey: .forwardFLOPs)
            try c.encode(backwardMACs, forKey: .backwardMACs)
            try c.encode(backwardFLOPs, forKey: .backwardFLOPs)
            try c.encode(savedBytes, forKey: .savedBytes)
            try c.encodeIfPresent(peakTransientBytes, forKey: .peakTransientBytes)
            try c.encodeIfPresent(seconds, forKey: .seconds)
            try c.encodeIfPresent(gflopsPerSecond, forKey: .gflopsPerSecond)
        }
    }

    /// Label of the totals row.
    public static let totalLabel = "total"

    public var graphName: String
    /// One row per block, in model order (`BlockAttribution.blocks`).
    public private(set) var rows: [Row]

    /// Profiles `graph` statically; times and peaks start unknown.
    public init(graph: Graph) {
        self.init(graph: graph, attribution: BlockAttribution(graph: graph))
    }

    public init(graph: Graph, attribution: BlockAttribution) {
        graphName = graph.name
        var byBlock: [String: Row] = [:]
        for block in attribution.blocks { byBlock[block] = Row(block: block) }
        for node in graph.nodes {
            let label = attribution.labels[node.id]
            var row = byBlock[label] ?? Row(block: label)
            if case .parameter(let key, let initializer, let trainable) = node.op {
                if trainable {
                    row.trainableParams += node.type.elementCount
                } else if BlockProfile.isFrozenParameter(key: key, initializer: initializer) {
                    row.frozenParams += node.type.elementCount
                }
            }
            let cost = CostModel.cost(of: node, in: graph)
            if attribution.isBackward[node.id] {
                row.backwardMACs += cost.macs
                row.backwardFLOPs += cost.flops
            } else {
                row.forwardMACs += cost.macs
                row.forwardFLOPs += cost.flops
            }
            byBlock[label] = row
        }
        for id in BlockProfile.savedForBackward(graph, attribution) {
            byBlock[attribution.labels[id]]?.savedBytes += graph.nodes[id].type.byteCount
        }
        rows = attribution.blocks.compactMap { byBlock[$0] }
    }

    /// Frozen model parameters count; RoPE tables (registered buffers in PyTorch) and the
    /// optimizer's `optim.*` / `ema.*` state do not.
    static func isFrozenParameter(key: String, initializer: Initializer) -> Bool {
        if key.hasPrefix(Naming.optimizerPrefix) || key.hasPrefix(Naming.emaPrefix) { return false }
        switch initializer {
        case .ropeCos, .ropeSin: return false
        default: return true
        }
    }

    /// Forward values (not parameters or constants) read by a backward node, with views
    /// (`reshape`, `stop_gradient`) resolved to the value they alias.
    public static func savedForBackward(_ graph: Graph, _ attribution: BlockAttribution) -> Set<Int> {
        func root(_ id: Int) -> Int {
            var id = id
            while true {
                switch graph.nodes[id].op {
                case .reshape, .stopGradient: id = graph.nodes[id].inputs[0]
                default: return id
                }
            }
        }
        var saved = Set<Int>()
        for node in graph.nodes where attribution.isBackward[node.id] {
            for operand in node.inputs where !attribution.isBackward[operand] {
                let value = root(operand)
                switch graph.nodes[value].op {
                case .parameter, .constant, .iota: continue
                default: saved.insert(value)
                }
            }
        }
        return saved
    }

    /// The sums over all rows (peak transient: the maximum; seconds: the sum of those measured).
    public var totals: Row {
        var total = Row(block: BlockProfile.totalLabel)
        for row in rows {
            total.trainableParams += row.trainableParams
            total.frozenParams += row.frozenParams
            total.forwardMACs += row.forwardMACs
            total.forwardFLOPs += row.forwardFLOPs
            total.backwardMACs += row.backwardMACs
            total.backwardFLOPs += row.backwardFLOPs
            total.savedBytes += row.savedBytes
            if let peak = row.peakTransientBytes { total.peakTransientBytes = max(total.peakTransientBytes ?? 0, peak) }
            if let seconds = row.seconds { total.seconds = (total.seconds ?? 0) + seconds }
        }
        return total
    }

    /// The row of `block`, if present.
    public func row(_ block: String) -> Row? { rows.first { $0.block == block } }

    /// Adds measured time to `block` (a block the graph did not have gets a new, empty row).
    public mutating func addMeasurement(block: String, seconds: Double) {
        let index = rowIndex(block)
        rows[index].seconds = (rows[index].seconds ?? 0) + seconds
    }

    /// Records the peak transient bytes measured while `block` ran (keeps the larger of two).
    public mutating func setPeakTransient(block: String, bytes: Int) {
        let index = rowIndex(block)
        rows[index].peakTransientBytes = max(rows[index].peakTransientBytes ?? 0, bytes)
    }

    private mutating func rowIndex(_ block: String) -> Int {
        if let index = rows.firstIndex(where: { $0.block == block }) { return index }
        rows.append(Row(block: block))
        return rows.count - 1
    }

    // MARK: Rendering

    /// Column headers of `table()`.
    public static let columns = ["block", "params", "fwd GMACs", "fwd GFLOPs", "bwd GMACs", "bwd GFLOPs",
                                 "saved MB", "peak MB", "ms", "GFLOP/s"]

    /// A fixed-width text table, one line per block plus a separator and the totals row.
    /// MB are 10⁶ bytes; `-` marks values not measured.
    public func table() -> String {
        let lines = rows.map(BlockProfile.cells) + [BlockProfile.cells(totals)]
        var widths = BlockProfile.columns.map(\.count)
        for line in lines { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let separator = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        var out = [render(BlockProfile.columns), separator]
        out += lines.dropLast().map(render)
        out += [separator, render(lines.last!)]
        return out.joined(separator: "\n") + "\n"
    }

    static func cells(_ row: Row) -> [String] {
        func giga(_ x: Int) -> String {
            let g = Double(x) / 1e9
            return x == 0 || g >= 0.001 ? String(format: "%.3f", g) : String(format: "%.1e", g)
        }
        func mega(_ x: Int?) -> String { x.map { String(format: "%.2f", Double($0) / 1e6) } ?? "-" }
        return [row.block, formatCount(row.params), giga(row.forwardMACs), giga(row.forwardFLOPs),
                giga(row.backwardMACs), giga(row.backwardFLOPs), mega(row.savedBytes), mega(row.peakTransientBytes),
                row.seconds.map { String(format: "%.2f", $0 * 1000) } ?? "-",
                row.gflopsPerSecond.map { String(format: "%.1f", $0) } ?? "-"]
    }

    /// `812`, `12.35K`, `675.13M`, `1.20B`.
    public static func formatCount(_ n: Int) -> String {
        let x = Double(n)
        if abs(x) >= 1e9 { return String(format: "%.2fB", x / 1e9) }
        if abs(x) >= 1e6 { return String(format: "%.2fM", x / 1e6) }
        if abs(x) >= 1e3 { return String(format: "%.2fK", x / 1e3) }
        return String(n)
    }

    enum CodingKeys: String, CodingKey { case graph, rows, totals }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        graphName = try c.decode(String.self, forKey: .graph)
        rows = try c.decode([Row].self, forKey: .rows)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(graphName, forKey: .graph)
        try c.encode(rows, forKey: .rows)
        try c.encode(totals, forKey: .totals)
    }

    /// Pretty-printed JSON with sorted keys (a stable order): `{"graph", "rows": […], "totals"}`.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
