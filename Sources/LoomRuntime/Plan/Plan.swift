import Foundation
import LoomIR

/// Where a plan keeps a value.
public enum ValueLocation: Equatable, Sendable {
    /// Byte offset in the transient arena.
    case arena(Int)
    /// Byte offset in the parameter region (parameters and optimizer/EMA buffers).
    case parameter(Int)
    /// The same memory as another node (views: reshape, stop_gradient).
    case alias(Int)
    /// A view into the parameter region at this byte offset (a concatenation of parameters laid
    /// out back to back); no launch.
    case parameterView(Int)

    /// Whether the value is a view of memory owned by another value (nothing is launched for it).
    public var isView: Bool {
        switch self {
        case .alias, .parameterView: return true
        case .arena, .parameter: return false
        }
    }
}

/// Memory figures of a plan, in bytes.
public struct PlanMemoryReport: Equatable, Sendable, Codable {
    /// Transient arena size (every value except parameters and optimizer state).
    public var arenaBytes: Int
    /// Most bytes live at any one launch (the best any placement could do).
    public var lowerBound: Int
    /// Sum of all transient values' sizes (what one buffer per value would take).
    public var totalRequested: Int
    /// Part of the arena that holds inputs and outputs, kept for the whole run.
    public var pinnedBytes: Int
    public var fragmentation: Double
    /// Values written over one of their operands.
    public var inPlaceCount: Int
    public var parameterBytes: Int

    public init(arenaBytes: Int, lowerBound: Int, totalRequested: Int, pinnedBytes: Int, fragmentation: Double,
                inPlaceCount: Int, parameterBytes: Int) {
        self.arenaBytes = arenaBytes
        self.lowerBound = lowerBound
        self.totalRequested = totalRequested
        self.pinnedBytes = pinnedBytes
        self.fragmentation = fragmentation
        self.inPlaceCount = inPlaceCount
        self.parameterBytes = parameterBytes
    }
}

/// A compiled step: the optimised graph in launch order plus where every value lives. Runs with
/// `PlanExecutor`, without the compiler; nothing is allocated or decided while it runs.
public struct Plan: Equatable, Sendable {
    public static let formatVersion = 4
    public static let magic = "LOOM-PLAN"
    /// The Loom release recorded in the header of every plan it writes.
    public static let writer = "loom 0.15"

    public var graph: Graph
    public var locations: [ValueLocation]
    public var memory: PlanMemoryReport
    /// How each node's launch spreads over the team (`.none` where nothing is launched).
    public var partitions: [LaunchPartition]
    /// What the plan was compiled for, carried in its header: a training plan holds its whole
    /// training configuration (`Naming.trainingConfigKey`) and that text's hash
    /// (`Naming.trainingConfigHashKey`).
    public var metadata: [String: String] = [:]

    /// `partitions` default to the lowering rule (`LaunchPartition.of`) for every launch.
    public init(graph: Graph, locations: [ValueLocation], memory: PlanMemoryReport, partitions: [LaunchPartition]? = nil) {
        self.graph = graph
        self.locations = locations
        self.memory = memory
        self.partitions = partitions ?? graph.nodes.map { node in
            locations[node.id].isView ? .none : LaunchPartition.of(node, in: graph)
        }
    }

    /// Whether `node` does work when the plan runs: not a leaf bound to memory (input, parameter)
    /// and not a view of another value's memory.
    public func isLaunched(_ node: Node) -> Bool {
        switch node.op {
        case .input, .parameter: return false
        default: return !locations[node.id].isView
        }
    }

    /// The nodes that do work, in launch order.
    public var launchedNodeIDs: [Int] { graph.nodes.filter(isLaunched).map(\.id) }

    /// Parameter table: key, type and offset in the parameter region.
    public var parameterTable: [(name: String, type: TensorType, offset: Int)] {
        graph.parameterNodes.compactMap { node in
            guard let name = node.op.parameterName, case .parameter(let offset) = locations[node.id] else { return nil }
            return (name, node.type, offset)
        }
    }

    // MARK: file format

    struct Header: Codable {
        var version: Int
        /// The Loom release that wrote the plan.
        var writer: String
        var memory: PlanMemoryReport
        /// One entry per node: "a<offset>", "p<offset>", "q<offset>" or "v<node>".
        var locations: [String]
        /// One entry per node: its launch partition.
        var partitions: [LaunchPartition]
        var metadata: [String: String]
    }

    /// `LOOM-PLAN 4 <checksum>`, a one-line JSON header, then the graph as IR text; the checksum
    /// (`Plan.checksum`) covers everything after the first line.
    public func encoded() -> String {
        let header = Header(version: Plan.formatVersion, writer: Plan.writer, memory: memory, locations: locations.map { location in
            switch location {
            case .arena(let o): return "a\(o)"
            case .parameter(let o): return "p\(o)"
            case .alias(let n): return "v\(n)"
            case .parameterView(let o): return "q\(o)"
            }
        }, partitions: partitions, metadata: metadata)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try! encoder.encode(header), as: UTF8.self)
        let rest = "\(json)\n\(IRPrinter.print(graph))"
        return "\(Plan.magic) \(Plan.formatVersion) \(Plan.checksum(rest))\n" + rest
    }

    /// FNV-1a (64 bits, 16 hex digits) of `text`'s UTF-8 bytes: catches damaged, cut and edited plan
    /// files (not a signature: whoever edits a plan can recompute it, and the verifier then checks
    /// what the plan says).
    public static func checksum(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public func write(to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        do {
            try encoded().write(toFile: temporary, atomically: false, encoding: .utf8)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw RuntimeError("cannot write plan \(path): \(error.localizedDescription)")
        }
        if rename(temporary, path) != 0 {
            try? FileManager.default.removeItem(atPath: temporary)
            throw RuntimeError("cannot write plan \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Reads a plan file; errors name the file and what is wrong (version, truncation, layout).
    public static func read(path: String) throws -> Plan {
        if let problem = FileKind.problem(with: path) { throw RuntimeError("cannot read plan \(path): it \(problem)") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RuntimeError("cannot read plan \(path): reading it failed")
        }
        return try decode(String(decoding: data, as: UTF8.self), source: path)
    }

    public static func decode(_ text: String, source: String) throws -> Plan {
        let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        if lines.count < 3, lines.first?.hasPrefix(magic + " ") == true {
            throw RuntimeError("\(source): plan file is truncated (it ends inside the header)")
        }
        guard lines.count == 3, lines[0].hasPrefix(magic + " ") else {
            throw RuntimeError("\(source): not a Loom plan (expected a first line '\(magic) \(formatVersion) <checksum>')")
        }
        let first = lines[0].split(separator: " ", omittingEmptySubsequences: false)
        guard first.count >= 2, let version = Int(first[1]), version == formatVersion else {
            throw RuntimeError("\(source): plan format version \(first.count >= 2 ? String(first[1]) : "?") is not supported (this Loom reads version \(formatVersion)); recompile it with `loom compile`")
        }
        let rest = String(text[text.index(after: text.firstIndex(of: "\n")!)...])
        guard first.count == 3, first[2] == Plan.checksum(rest) else {
            throw RuntimeError("\(source): plan file is damaged, truncated or edited (its checksum does not match its contents); recompile it with `loom compile`")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(lines[1].utf8))
        } catch {
            throw RuntimeError("\(source): plan header is damaged (\(error))")
        }
        let graph: Graph
        do {
            graph = try IRParser.parse(String(lines[2]), source: source)
        } catch let error as IRError {
            throw RuntimeError("\(source): plan body is damaged or truncated: \(error.message)")
        }
        guard header.locations.count == graph.nodes.count, header.partitions.count == graph.nodes.count else {
            throw RuntimeError("\(source): plan lists \(header.locations.count) value locations and \(header.partitions.count) partitions for \(graph.nodes.count) nodes (truncated or edited file)")
        }
        var locations: [ValueLocation] = []
        for (i, entry) in header.locations.enumerated() {
            guard let kind = entry.first, let n = Int(entry.dropFirst()), n >= 0 else {
                throw RuntimeError("\(source): bad location '\(entry)' for node %\(i)")
            }
            switch kind {
            case "a": locations.append(.arena(n))
            case "p": locations.append(.parameter(n))
            case "v" where n < i: locations.append(.alias(n))
            case "q": locations.append(.parameterView(n))
            default: throw RuntimeError("\(source): bad location '\(entry)' for node %\(i)")
            }
        }
        var plan = Plan(graph: graph, locations: locations, memory: header.memory, partitions: header.partitions)
        plan.metadata = header.metadata
        try plan.validateLayout(source: source)
        try PlanVerifier.verify(plan, source: source)
        return plan
    }

    /// Every value fits inside its region (guards against edited or mismatched files).
    public func validateLayout(source: String) throws {
        guard memory.arenaBytes >= 0, memory.parameterBytes >= 0 else {
            throw RuntimeError("\(source): negative region size in the plan header")
        }
        for node in graph.nodes {
            let bytes = storageBytes(node.type)
            let end: Int
            switch locations[node.id] {
            case .arena(let o), .parameter(let o), .parameterView(let o):
                guard let e = SizeLimits.add(o, bytes) else {
                    throw RuntimeError("\(source): node %\(node.id) at offset \(o) (\(bytes) bytes) overflows")
                }
                end = e
            case .alias:
                end = 0
            }
            switch locations[node.id] {
            case .arena(let o) where end > memory.arenaBytes:
                throw RuntimeError("\(source): node %\(node.id) at arena offset \(o) (\(bytes) bytes) lies outside the \(memory.arenaBytes)-byte arena")
            case .alias(let other) where storageBytes(graph.nodes[other].type) < bytes:
                throw RuntimeError("\(source): node %\(node.id) (\(bytes) bytes) is a view of %\(other), which holds only \(storageBytes(graph.nodes[other].type)) bytes")
            case .parameter(let o) where end > memory.parameterBytes,
                 .parameterView(let o) where end > memory.parameterBytes:
                throw RuntimeError("\(source): node %\(node.id) at parameter offset \(o) lies outside the parameter region")
            default: break
            }
        }
    }
}

extension Plan {
    /// `bf16` when any launch takes bf16 operands (the precision pass marks every matrix product
    /// alike), else `fp32`.
    public var precision: PrecisionPolicy {
        graph.nodes.contains { $0.compute == .bf16 } ? .bf16 : .fp32
    }
}
