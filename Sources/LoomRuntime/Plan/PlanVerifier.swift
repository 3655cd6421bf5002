import LoomIR

/// Checks what a plan says about memory before anything runs, independently of the planner that
/// wrote it: a tampered or inconsistent plan is refused with the first violation named.
///
/// Rules (beyond `Plan.validateLayout`, which keeps every value inside its region):
/// 1. No launch overwrites arena bytes that hold a value a later launch still reads (or an input
///    or output, which live for the whole run). The one exception is an in-place result: a kernel
///    that allows it (`Op.allowsInPlace`) may write exactly over a same-sized operand that dies at
///    that launch.
/// 2. Only the optimizer (`adamw`) and the producers of `update.<key>` outputs (in parameter `<key>`'s
///    own bytes) write into the parameter region.
public enum PlanVerifier {
    public static func verify(_ plan: Plan, source: String) throws {
        let graph = plan.graph
        let count = graph.nodes.count
        // Views share their operand's memory: readers of a view read its root.
        var root = Array(0..<count)
        for node in graph.nodes { if case .alias(let other) = plan.locations[node.id] { root[node.id] = root[other] } }
        var lastRead = [Int](repeating: -1, count: count)
        for node in graph.nodes { for operand in node.inputs { lastRead[root[operand]] = max(lastRead[root[operand]], node.id) } }
        for output in graph.outputs { lastRead[root[output.node]] = Int.max }

        struct Value { var id: Int, start: Int, end: Int, lower: Int, upper: Int }
        var values: [Value] = []
        for node in graph.nodes {
            guard case .arena(let offset) = plan.locations[node.id] else { continue }
            let bytes = storageBytes(node.type)
            guard bytes > 0 else { continue }
            let isInput: Bool
            if case .input = node.op { isInput = true } else { isInput = false }
            let start = isInput ? -1 : node.id
            let end = isInput ? Int.max : max(lastRead[node.id], start)
            values.append(Value(id: node.id, start: start, end: end, lower: offset, upper: offset + bytes))
        }
        values.sort { ($0.start, $0.id) < ($1.start, $1.id) }
        for (i, earlier) in values.enumerated() {
            for later in values[(i + 1)...] {
                if later.start > earlier.end { break }  // sorted by start: no later value meets it
                guard later.lower < earlier.upper, earlier.lower < later.upper else { continue }
                let writer = graph.nodes[later.id]
                let inPlace = later.start == earlier.end && writer.op.allowsInPlace && later.lower == earlier.lower
                    && later.upper == earlier.upper && writer.inputs.contains { root[$0] == earlier.id }
                if !inPlace {
                    let reader = earlier.end == Int.max ? "it is an input or output of the plan"
                        : "launch %\(earlier.end) still reads it"
                    throw RuntimeError("\(source): launch %\(later.id) (\(writer.op.mnemonic)) writes arena bytes \(later.lower)..<\(later.upper), over %\(earlier.id) (\(earlier.lower)..<\(earlier.upper)), and \(reader)")
                }
            }
        }

        var parameterOffset: [String: Int] = [:]
        for node in graph.parameterNodes {
            if let name = node.op.parameterName, case .parameter(let offset) = plan.locations[node.id] { parameterOffset[name] = offset }
        }
        var updateTarget: [Int: String] = [:]
        for output in graph.outputs where output.name.hasPrefix(Naming.updatePrefix) {
            updateTarget[output.node] = String(output.name.dropFirst(Naming.updatePrefix.count))
        }
        for node in graph.nodes where !node.op.isLeaf {
            guard case .parameter(let offset) = plan.locations[node.id] else { continue }
            if case .fused(.adamw) = node.op { continue }
            if let key = updateTarget[node.id], parameterOffset[key] == offset { continue }
            throw RuntimeError("\(source): launch %\(node.id) (\(node.op.mnemonic)) writes into the parameter region at offset \(offset), which only the optimizer and parameter updates may do")
        }
    }
}
