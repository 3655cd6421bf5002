import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// The plan audit: reads a lowered plan alone and lists every unsound write, overlap or pin.
extension LoweringTests {
    /// One value with memory of its own (not a view) and its live interval over the launches.
    struct Value {
        var id: Int
        var offset: Int
        var bytes: Int
        var start: Int  // launch that writes it (-1: inputs, written before the first launch)
        var end: Int    // last launch that reads it (Int.max: outputs, read after the run)
        var range: Range<Int> { offset..<(offset + bytes) }
    }

    /// Kernels that may write their result over `operand` (index into the node's inputs): they
    /// read element i (or row r, all of it first) of an operand laid out like the result before
    /// writing element i (row r). Written independently of the lowering's own rule.
    static func legalInPlace(_ node: Node, operand index: Int, _ graph: Graph) -> Bool {
        guard graph.nodes[node.inputs[index]].type == node.type else { return false }
        switch node.op {
        case .unary, .affine, .binary, .softmax, .layerNorm, .rmsNorm, .fused(.elementwise): return true
        case .fused(.normModulate): return index == 0
        default: return false
        }
    }

    /// Returns every violation found in `plan` (empty when it is sound).
    static func audit(_ plan: Plan) -> [String] {
        let graph = plan.graph
        var problems: [String] = []
        let n = graph.nodes.count
        func describe(_ id: Int) -> String { "%\(id) (\(graph.nodes[id].op.mnemonic) \(graph.nodes[id].type))" }
        // Views resolve to the value whose memory they use.
        var base = Array(0..<n)
        for node in graph.nodes {
            if case .alias(let other) = plan.locations[node.id] {
                guard other < node.id else { problems.append("\(describe(node.id)) aliases a later node"); continue }
                base[node.id] = base[other]
            }
        }
        let launches = plan.launchedNodeIDs
        let isLaunch = Set(launches)
        // Readers of each value, through views; a view over parameters laid out back to back is
        // read wherever one of its members is.
        var readers = [[Int]](repeating: [], count: n)
        for id in launches { for operand in Set(graph.nodes[id].inputs.map { base[$0] }) { readers[operand].append(id) } }
        for node in graph.nodes {
            guard case .parameterView(let offset) = plan.locations[node.id] else { continue }
            if case .slice(0, let start, let end) = node.op {
                // A slice of a value written into the parameter region (the optimizer's state).
                let source = node.inputs[0]
                guard case .parameter(let at) = plan.locations[source], isLaunch.contains(source),
                      offset == at + 4 * start, end <= graph.nodes[source].type.elementCount else {
                    problems.append("parameter view \(describe(node.id)) is not inside \(describe(source))")
                    continue
                }
                readers[source] += readers[node.id]
                continue
            }
            var expected = offset
            for member in node.inputs {
                guard case .parameter = graph.nodes[member].op, case .parameter(let at) = plan.locations[member], at == expected else {
                    problems.append("parameter view \(describe(node.id)): member \(describe(member)) is not laid out at \(expected)")
                    break
                }
                expected += storageBytes(graph.nodes[member].type)
                readers[base[member]] += readers[node.id]
            }
        }
        let outputBases = Set(graph.outputs.filter { !$0.name.hasPrefix(Naming.updatePrefix) }.map { base[$0.node] })
        let updateBases = Set(graph.outputs.filter { $0.name.hasPrefix(Naming.updatePrefix) }.map { base[$0.node] })

        var values: [Value] = []
        for node in graph.nodes where base[node.id] == node.id {
            guard case .arena(let offset) = plan.locations[node.id] else { continue }
            let bytes = storageBytes(node.type)
            if offset % PlanLowering.alignment != 0 { problems.append("\(describe(node.id)) at unaligned offset \(offset)") }
            if offset < 0 || offset + bytes > plan.memory.arenaBytes {
                problems.append("\(describe(node.id)) at \(offset)..<\(offset + bytes) lies outside the \(plan.memory.arenaBytes)-byte arena")
            }
            if case .parameter = node.op { problems.append("parameter \(describe(node.id)) is in the arena") }
            let start: Int
            if case .input = node.op { start = -1 } else { start = node.id }
            if !isLaunch.contains(node.id), start >= 0 { problems.append("\(describe(node.id)) is never launched") }
            let end = outputBases.contains(node.id) || updateBases.contains(node.id) ? Int.max : (readers[node.id].max() ?? start)
            if bytes > 0 { values.append(Value(id: node.id, offset: offset, bytes: bytes, start: start, end: end)) }
        }
        let valueOf = Dictionary(uniqueKeysWithValues: values.map { ($0.id, $0) })

        // In place: a launch at the same offset as one of its operands.
        var inPlaceOver: [Int: Set<Int>] = [:]  // node → operand values it overwrote
        for id in launches {
            guard let mine = valueOf[id] else { continue }
            let node = graph.nodes[id]
            for (index, operand) in node.inputs.enumerated() {
                guard let theirs = valueOf[base[operand]], theirs.id != id, theirs.offset == mine.offset else { continue }
                let victim = graph.nodes[theirs.id]
                inPlaceOver[id, default: []].insert(theirs.id)
                if !legalInPlace(node, operand: index, graph) {
                    problems.append("\(describe(id)) is written in place over operand \(describe(operand)), which its kernel does not allow")
                }
                if let later = readers[theirs.id].first(where: { $0 > id }) {
                    problems.append("\(describe(id)) overwrites \(describe(theirs.id)) in place, but %\(later) reads it later")
                }
                switch victim.op {
                case .input, .parameter:
                    problems.append("\(describe(id)) is written in place over the \(victim.op.mnemonic) \(describe(theirs.id))")
                default: break
                }
                if outputBases.contains(theirs.id) || updateBases.contains(theirs.id) {
                    problems.append("\(describe(id)) is written in place over the output \(describe(theirs.id))")
                }
            }
        }

        // No two values live at the same time overlap; touching intervals are allowed only for a
        // legal in-place write (checked above) at the same offset and size.
        let sorted = values.sorted { ($0.offset, $0.id) < ($1.offset, $1.id) }
        for i in sorted.indices {
            let a = sorted[i]
            var j = i + 1
            while j < sorted.count, sorted[j].offset < a.range.upperBound {
                let b = sorted[j]
                j += 1
                guard a.start <= b.end, b.start <= a.end else { continue }
                let (first, second) = a.start < b.start ? (a, b) : (b, a)
                let inPlace = first.end == second.start && first.offset == second.offset
                    && inPlaceOver[second.id]?.contains(first.id) == true
                if !inPlace {
                    problems.append("\(describe(a.id)) [launch \(a.start)...\(a.end), bytes \(a.range)] and \(describe(b.id)) [launch \(b.start)...\(b.end), bytes \(b.range)] overlap while both live")
                }
            }
        }

        // Pinned values share memory with nothing, except the operands an output was written over
        // in place (dead by then, and part of the same buffer).
        func ancestry(_ id: Int) -> Set<Int> {
            var seen: Set<Int> = []
            var stack = [id]
            while let top = stack.popLast() {
                for operand in inPlaceOver[top] ?? [] where seen.insert(operand).inserted { stack.append(operand) }
            }
            return seen
        }
        for value in values {
            let node = graph.nodes[value.id]
            let isInput: Bool
            if case .input = node.op { isInput = true } else { isInput = false }
            guard isInput || outputBases.contains(value.id) else { continue }
            if value.range.upperBound > plan.memory.pinnedBytes {
                problems.append("pinned \(describe(value.id)) at \(value.range) lies outside the pinned region [0, \(plan.memory.pinnedBytes))")
            }
            let allowed = ancestry(value.id)
            for other in values where other.id != value.id && other.range.overlaps(value.range) && !allowed.contains(other.id) {
                problems.append("pinned \(describe(value.id)) at \(value.range) shares memory with \(describe(other.id)) at \(other.range)")
            }
        }

        // Updates written into their parameter.
        let table = Dictionary(uniqueKeysWithValues: plan.parameterTable.map { ($0.name, $0) })
        for node in graph.parameterNodes {
            if case .parameter = plan.locations[node.id] {} else { problems.append("parameter \(describe(node.id)) is not in the parameter region") }
        }
        for output in graph.outputs where output.name.hasPrefix(Naming.updatePrefix) {
            let key = String(output.name.dropFirst(Naming.updatePrefix.count))
            guard let entry = table[key], let parameter = graph.parameterNodes.first(where: { $0.op.parameterName == key }) else {
                problems.append("output \(output.name) names no parameter")
                continue
            }
            let u = base[output.node]
            guard case .parameter(let offset) = plan.locations[u], offset == entry.offset else { continue }
            if graph.nodes[u].type != parameter.type {
                problems.append("\(output.name) \(describe(u)) is written into parameter \(key) of type \(parameter.type)")
            }
            if let later = readers[parameter.id].first(where: { $0 > u }) {
                problems.append("\(output.name) \(describe(u)) is written into parameter \(key), but %\(later) reads the old value later")
            }
            // At its own launch the update may read the old value only where its kernel allows it.
            let node = graph.nodes[u]
            for (index, operand) in node.inputs.enumerated() where base[operand] == parameter.id {
                if !legalInPlace(node, operand: index, graph) {
                    problems.append("\(output.name) \(describe(u)) is written into parameter \(key) while its kernel reads it as operand \(index)")
                }
            }
        }
        return problems
    }

    /// Audits `plan` and checks that it computes what `graph` computes, over two runs (the
    /// second one from the parameters the first one updated).
    func check(_ graph: Graph, plan: Plan, inputs: [String: HostTensor], parameters: [String: HostTensor],
               tolerance: Double = 1e-5, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let problems = Self.audit(plan)
        XCTAssertTrue(problems.isEmpty, "\(label):\n" + problems.prefix(10).joined(separator: "\n") + "\n" + IRPrinter.print(plan.graph),
                      file: file, line: line)
        let executor = try PlanExecutor(plan: plan, threads: 1)
        try executor.setParameters(parameters)
        var state = parameters
        for run in 1...2 {
            let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: state)
            let compiled = try executor.run(inputs: inputs)
            for (name, value) in reference {
                if name.hasPrefix(Naming.updatePrefix) {
                    state[String(name.dropFirst(Naming.updatePrefix.count))] = value
                } else {
                    let error = GoldenCheck.relativeError(compiled[name] ?? HostTensor(shape: [0], floats: []), value)
                    XCTAssertLessThanOrEqual(error, tolerance, "\(label), run \(run): output \(name)", file: file, line: line)
                }
            }
            let now = executor.parameters()
            for (key, value) in state {
                XCTAssertLessThanOrEqual(GoldenCheck.relativeError(now[key]!, value), tolerance,
                                         "\(label), run \(run): parameter \(key)", file: file, line: line)
            }
        }
    }
}
