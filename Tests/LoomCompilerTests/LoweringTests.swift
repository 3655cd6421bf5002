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

/// Audits lowered plans against their graphs, deriving everything from the plan itself (not from
/// the lowering's own bookkeeping): in-place writes only where legal, no two live values
/// overlapping in the arena, pinned inputs and outputs sharing memory with nothing, `update.*`
/// outputs written into their parameter only when nothing reads the old value afterwards.
final class LoweringTests: XCTestCase {
    // MARK: the audit

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
        let launches = graph.nodes.filter { node in
            switch node.op {
            case .input, .parameter: return false
            default:
                switch plan.locations[node.id] {
                case .alias, .parameterView: return false
                default: return true
                }
            }
        }.map(\.id)
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

    // MARK: random elementwise DAGs

    /// A random DAG of elementwise and row-wise ops over broadcastable shapes, with views,
    /// constants, outputs read by later nodes, and parameters with `update.*` outputs.
    static func randomGraph(seed: UInt64) throws -> (Graph, [String: HostTensor], [String: HostTensor]) {
        var rng = RandomStream(seed: seed, stream: RandomStream.streamID("lowering-tests"))
        func pick(_ n: Int) -> Int { min(Int(rng.uniform(1)[0] * Float(n)), n - 1) }
        func chance(_ p: Float) -> Bool { rng.uniform(1)[0] < p }
        let full = [3, 4, 6]
        let shapes: [[Int]] = [full, full, [4, 6], [6], [3, 1, 6], [], [3, 4, 1]]
        let b = GraphBuilder(name: "random_\(seed)")
        var pool: [Tensor] = []
        var inputs: [String: HostTensor] = [:]
        var parameters: [String: HostTensor] = [:]
        for i in 0..<(2 + pick(3)) {
            let shape = shapes[pick(shapes.count)]
            pool.append(b.input("x\(i)", TensorType(.f32, i == 0 ? full : shape)))
            inputs["x\(i)"] = TestTensors.random(i == 0 ? full : shape, seed: seed * 31 + UInt64(i))
        }
        var params: [Tensor] = []
        for (i, shape) in [full, [6]].enumerated() {
            let p = b.parameter("p\(i)", shape, initializer: .zeros)
            params.append(p)
            pool.append(p)
            parameters["p\(i)"] = TestTensors.random(shape, seed: seed * 37 + UInt64(i))
        }
        let unaries: [UnaryFunction] = [.neg, .tanh, .sin, .cos, .silu, .geluTanh, .sigmoid, .square, .abs, .relu]
        let binaries: [BinaryFunction] = [.add, .sub, .mul, .max, .min]
        let count = 12 + pick(16)
        for _ in 0..<count {
            let x = pool[pool.count - 1 - pick(min(pool.count, 8))]  // favour recent values: longer chains
            let y = pool[pick(pool.count)]
            let choice = pick(12)
            var result: Tensor
            switch choice {
            case 0, 1: result = x.unary(unaries[pick(unaries.count)])
            case 2: result = x.affine(scale: 0.5 + rng.uniform(1)[0], shift: rng.uniform(1, low: -1, high: 1)[0])
            case 3, 4, 5:
                guard TypeInference.broadcastShapes(x.shape, y.shape) != nil else { continue }
                result = b.append(.binary(binaries[pick(binaries.count)]), chance(0.5) ? [x, y] : [y, x])
            case 6: result = x * b.constant(rng.uniform(1, low: -2, high: 2)[0])
            case 7:
                guard x.rank >= 1 else { continue }
                result = [x.softmax(), x.layerNorm(eps: 1e-5), x.rmsNorm(eps: 1e-5)][pick(3)]
            case 8:
                guard x.rank >= 1, x.shape.last! % 2 == 0 else { continue }
                result = x.rotatePairs()
            case 9:
                // A view round trip: flatten, an op on the flat view, reshape back.
                let flat = x.reshape([x.type.elementCount])
                result = (chance(0.5) ? flat.tanh() : flat.stopGradient()).reshape(x.shape)
            case 10:
                guard x.rank >= 1 else { continue }
                result = x.sum(axes: [x.rank - 1], keepDims: true)
            default:
                result = x.broadcast(to: TypeInference.broadcastShapes(x.shape, full)!)
            }
            pool.append(result)
        }
        let computed = Array(pool.dropFirst(inputs.count + params.count))
        guard !computed.isEmpty else { return try randomGraph(seed: seed + 1000) }
        b.output("last", computed.last!)
        var named: Set<Int> = [computed.last!.id]
        for i in 0..<(1 + pick(3)) {
            let t = computed[pick(computed.count)]
            if named.insert(t.id).inserted { b.output("out\(i)", t) }
        }
        // Updates: a value of the parameter's type (made so when needed).
        for (i, p) in params.enumerated() {
            // Only values that depend on the parameter: a parameter nothing live reads is dropped by
            // simplification (see testUpdateOfAParameterNothingElseReads).
            func dependsOnP(_ id: Int) -> Bool {
                var stack = [id], seen: Set<Int> = []
                while let top = stack.popLast() {
                    if top == p.id { return true }
                    for operand in b.graph.nodes[top].inputs where seen.insert(operand).inserted { stack.append(operand) }
                }
                return false
            }
            var candidates = computed.filter { $0.type == p.type && !named.contains($0.id) && dependsOnP($0.id) }
            if candidates.isEmpty || chance(0.3) {
                candidates = [(computed[pick(computed.count)].meanAll() + p * 0.5).tanh()]
            }
            let u = candidates[pick(candidates.count)]
            named.insert(u.id)
            b.output("update.p\(i)", u)
        }
        return (try b.build(), inputs, parameters)
    }

    func testRandomElementwiseDAGs() throws {
        var inPlace = 0, updatesInPlace = 0
        for seed in UInt64(1)...40 {
            let (graph, inputs, parameters) = try Self.randomGraph(seed: seed)
            for fuse in [false, true] {
                let plan = try Pipeline.inference(fuse: fuse).plan(graph)
                try check(graph, plan: plan, inputs: inputs, parameters: parameters, "seed \(seed), fuse \(fuse)")
                inPlace += plan.memory.inPlaceCount
                for output in plan.graph.outputs where output.name.hasPrefix(Naming.updatePrefix) {
                    if case .parameter = plan.locations[output.node] { updatesInPlace += 1 }
                }
            }
        }
        // The generator must exercise what the audit checks.
        XCTAssertGreaterThan(inPlace, 40)
        XCTAssertGreaterThan(updatesInPlace, 20)
    }

    /// Also the lowering alone, on unsimplified graphs (dead values, duplicate constants).
    func testRandomDAGsWithoutPasses() throws {
        for seed in UInt64(41)...60 {
            let (graph, inputs, parameters) = try Self.randomGraph(seed: seed)
            try check(graph, plan: try PlanLowering.lower(graph), inputs: inputs, parameters: parameters, "seed \(seed), no passes")
        }
    }

    // MARK: hand-made cases

    /// An update whose kernel reads the old parameter in a way that cannot be done in place (a
    /// matrix product) must not be written into the parameter.
    func testUpdateIsNotWrittenOverAnOperandItsKernelStillReads() throws {
        let b = GraphBuilder(name: "update_matmul")
        let x = b.input("x", TensorType(.f32, [4, 4]))
        let w = b.parameter("w", [4, 4], initializer: .zeros)
        b.output("update.w", w.matmul(x))
        let graph = try b.build()
        let inputs = ["x": TestTensors.random([4, 4], seed: 50)]
        let parameters = ["w": TestTensors.random([4, 4], seed: 51)]
        try check(graph, plan: try Pipeline.inference().plan(graph), inputs: inputs, parameters: parameters, "update = w·x")
        // The same with the transposed product and a softmax over the parameter's rows (legal).
        let c = GraphBuilder(name: "update_softmax")
        let v = c.parameter("w", [4, 4], initializer: .zeros)
        c.output("update.w", v.softmax())
        let softmaxGraph = try c.build()
        let softmaxPlan = try Pipeline.inference().plan(softmaxGraph)
        try check(softmaxGraph, plan: softmaxPlan, inputs: [:], parameters: parameters, "update = softmax(w)")
    }

    /// An `update.*` output whose parameter nothing else reads: the plan must keep the parameter
    /// (in its table, with the update written into it), not drop it as dead and lose the update.
    func testUpdateOfAParameterNothingElseReads() throws {
        let b = GraphBuilder(name: "update_unread")
        let x = b.input("x", TensorType(.f32, [5]))
        _ = b.parameter("p", [5], initializer: .zeros)
        b.output("update.p", x.tanh())
        b.output("y", x.sin())
        let graph = try b.build()
        let plan = try Pipeline.inference().plan(graph)
        XCTAssertEqual(plan.parameterTable.map(\.name), ["p"], IRPrinter.print(plan.graph))
        XCTAssertTrue(Self.audit(plan).isEmpty, Self.audit(plan).joined(separator: "\n"))
        let executor = try PlanExecutor(plan: plan, threads: 1)
        try executor.setParameters(["p": TestTensors.random([5], seed: 54)])
        let input = TestTensors.random([5], seed: 55)
        _ = try executor.run(inputs: ["x": input])
        XCTAssertEqual(executor.parameters()["p"]?.floats.count, 5, "the update of p was lost")
    }

    /// A value read after an in-place candidate's consumer (through a view) keeps its memory.
    func testViewReadLaterBlocksInPlace() throws {
        let b = GraphBuilder(name: "view_later")
        let x = b.input("x", TensorType(.f32, [2, 8]))
        let a = x.tanh()
        let view = a.reshape([16])
        let c = a.sin()             // would like to overwrite a …
        let d = view.exp()          // … but a is still read here, through the view
        b.output("y", c + d.reshape([2, 8]))
        let graph = try b.build()
        let plan = try Pipeline.inference(fuse: false).plan(graph)
        guard case .arena(let offsetA) = plan.locations[a.id], case .arena(let offsetC) = plan.locations[c.id] else {
            return XCTFail("values not in the arena")
        }
        XCTAssertNotEqual(offsetA, offsetC)
        try check(graph, plan: plan, inputs: ["x": TestTensors.random([2, 8], seed: 52)], parameters: [:], "view read later")
    }

    /// rotate_pairs reads each element's neighbour and must never run in place; a broadcast read
    /// of a smaller operand must not be overwritten either.
    func testKernelsThatCannotRunInPlace() throws {
        let b = GraphBuilder(name: "no_in_place")
        let x = b.input("x", TensorType(.f32, [3, 8]))
        let r = x.tanh().rotatePairs()
        let row = x.sum(axes: [0], keepDims: true).tanh()   // [1, 8], dies at the next node
        b.output("y", (r + row).softmax())
        let graph = try b.build()
        for fuse in [false, true] {
            let plan = try Pipeline.inference(fuse: fuse).plan(graph)
            try check(graph, plan: plan, inputs: ["x": TestTensors.random([3, 8], seed: 53)], parameters: [:],
                      "rotate_pairs, fuse \(fuse)")
        }
    }

    // MARK: the tiny SiT training step

    func testTinySiTTrainingPlan() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 4, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 8, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        let config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 2, steps: 1)
        let graph = try Trainer.trainingGraph(config)
        for fuse in [false, true] {
            let plan = try Pipeline.inference(fuse: fuse).plan(graph)
            let problems = Self.audit(plan)
            XCTAssertTrue(problems.isEmpty, "fuse \(fuse):\n" + problems.prefix(20).joined(separator: "\n"))
            XCTAssertGreaterThan(plan.memory.inPlaceCount, 0)
            // Every optimizer update goes straight into its parameter: nothing reads the old
            // weights or moments after the update is computed. Fused, the updates are views of
            // the `adamw` result at their parameters' own offsets.
            let updates = plan.graph.outputs.filter { $0.name.hasPrefix(Naming.updatePrefix) }
            XCTAssertFalse(updates.isEmpty)
            let offsets = Dictionary(uniqueKeysWithValues: plan.parameterTable.map { ($0.name, $0.offset) })
            for output in updates {
                var id = output.node
                while case .alias(let other) = plan.locations[id] { id = other }
                let key = String(output.name.dropFirst(Naming.updatePrefix.count))
                switch plan.locations[id] {
                case .parameter(let at), .parameterView(let at):
                    XCTAssertEqual(at, offsets[key], "fuse \(fuse): \(output.name) is written at \(at), its parameter lies at \(offsets[key] ?? -1)")
                default:
                    XCTFail("fuse \(fuse): \(output.name) is not written into its parameter (\(plan.locations[id]))")
                }
            }
            if fuse {
                XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "adamw" }.count, 1)
                XCTAssertEqual(plan.graph.nodes.filter { $0.op.mnemonic == "sum_squares" }.count, 1)
            }
            // The planner's own check agrees.
            let (_, requests, memory) = try PlanLowering.analyze(plan.graph)
            XCTAssertEqual(MemoryPlanner.violations(memory, requests, alignment: PlanLowering.alignment), [])
        }
    }
}
