import LoomIR
import LoomRuntime

/// Lowers an optimised graph to a `Plan`: views become aliases, parameters and optimizer state get
/// a region of their own, every other value gets a live interval over the launch order, values are
/// written in place over an operand that dies at that launch where the kernel allows it, and the
/// memory planner places the rest in one arena. Inputs and outputs are pinned.
public enum PlanLowering {
    public static let alignment = 64

    /// The buffer each node's value lives in after views and in-place reuse.
    struct Buffers {
        var root: [Int]                  // node → node whose buffer it uses
        var start: [Int: Int] = [:]      // buffer → first launch
        var end: [Int: Int] = [:]        // buffer → last launch that reads it
        var pinned: Set<Int> = []
        var inPlace: [(node: Int, operand: Int)] = []
    }

    /// The plan of `graph`, checked by the runtime's `PlanVerifier` (the rules a plan file must
    /// pass when it is loaded) before it is returned.
    public static func lower(_ graph: Graph) throws -> Plan {
        let plan = try analyze(graph).plan
        do {
            try PlanVerifier.verify(plan, source: "lowering of \(graph.name)")
        } catch let error as RuntimeError {
            throw IRError("the memory plan breaks a verifier rule (a planner bug): \(error.message)")
        }
        return plan
    }

    /// The transient buffers of `graph` (after views and in-place reuse) with their intervals,
    /// and the plan placed from them: for memory timelines and tests.
    public static func analyze(_ graph: Graph) throws -> (plan: Plan, requests: [BufferRequest], memory: MemoryPlan) {
        try place(try assignBuffers(graph))
    }

    /// The `lower` stage: where every value lives (parameter region, a view, an alias, or an arena
    /// buffer with its live interval over the launch order), before the arena is placed.
    public static func assignBuffers(_ graph: Graph) throws -> LoweredGraph {
        try Verifier.verify(graph)
        let count = graph.nodes.count
        var buffers = Buffers(root: Array(0..<count))
        var parameterOffsets: [Int: Int] = [:]
        var parameterBytes = 0
        // Concatenations of parameters along axis 0 become views: their members are laid out back
        // to back (the hoisted conditioning GEMM reads all blocks' adaLN weights this way).
        let views = parameterConcats(graph)
        var groupOf: [Int: Int] = [:]
        for (concat, members) in views { for m in members { groupOf[m] = concat } }
        var viewOffsets: [Int: Int] = [:]
        // The fused optimizer's state goes first, back to back, so `adamw` updates it in one pass
        // in place; its slices (the `update.*` values) are views of the region.
        let stateOffsets = try layOutOptimizerState(graph, views: views, parameterOffsets: &parameterOffsets,
                                                    viewOffsets: &viewOffsets, parameterBytes: &parameterBytes)
        for node in graph.nodes {
            if stateOffsets.launches[node.id] != nil { continue }
            if let offset = sliceOfState(node, stateOffsets.launches) {
                viewOffsets[node.id] = offset
                continue
            }
            switch node.op {
            case .parameter where parameterOffsets[node.id] != nil:
                break
            case .parameter:
                if let concat = groupOf[node.id] {
                    viewOffsets[concat] = parameterBytes
                    for member in views[concat]! {
                        parameterOffsets[member] = parameterBytes
                        parameterBytes += storageBytes(graph.nodes[member].type)
                    }
                    parameterBytes = align(parameterBytes)
                    continue
                }
                parameterOffsets[node.id] = parameterBytes
                parameterBytes += align(storageBytes(node.type))
            case .concat where viewOffsets[node.id] != nil:
                break
            case _ where isView(node.op):
                buffers.root[node.id] = buffers.root[node.inputs[0]]
            default:
                buffers.start[node.id] = node.id
                buffers.end[node.id] = node.id
            }
            if case .input = node.op { buffers.pinned.insert(node.id) }
        }
        var lastRead = [Int](repeating: -1, count: count)
        for node in graph.nodes { for operand in node.inputs { lastRead[buffers.root[operand]] = node.id } }
        try checkInPlaceState(graph, stateOffsets.launches, lastRead: lastRead)
        // Training updates are written straight into the parameter they replace when nothing reads
        // the old value afterwards: no pinned copy, no write-back.
        var updateTargets: [Int: Int] = [:]
        for output in graph.outputs where output.name.hasPrefix(Naming.updatePrefix) {
            let key = String(output.name.dropFirst(Naming.updatePrefix.count))
            let producer = graph.nodes[output.node]
            guard let target = graph.parameterNodes.first(where: { $0.op.parameterName == key }),
                  !isView(producer.op), buffers.start[output.node] != nil,
                  updateTargets[output.node] == nil, lastRead[target.id] <= output.node,
                  producer.type == target.type else { continue }
            // The producer may overwrite the parameter only if it does not read it, or reads it
            // element by element (an in-place-capable kernel with a same-shaped operand).
            let readsTarget = producer.inputs.contains { buffers.root[$0] == target.id }
            if readsTarget {
                let aligned = producer.inputs.allSatisfy { buffers.root[$0] != target.id || graph.nodes[$0].type == producer.type }
                guard allowsInPlace(producer.op), aligned, !readsElsewhere(producer, target.id, buffers) else { continue }
            } else if lastRead[target.id] == output.node {
                continue
            }
            updateTargets[output.node] = target.id
            buffers.start.removeValue(forKey: output.node)
            buffers.end.removeValue(forKey: output.node)
            buffers.root[output.node] = target.id
        }
        for output in graph.outputs where updateTargets[output.node] == nil {
            buffers.pinned.insert(buffers.root[output.node])
        }
        for (id, last) in lastRead.enumerated() where buffers.end[id] != nil { buffers.end[id] = max(buffers.end[id]!, last) }

        // In place: the result reuses an operand's buffer when that buffer dies here.
        for node in graph.nodes where allowsInPlace(node.op) && buffers.start[node.id] != nil {
            for operand in node.inputs {
                let candidate = buffers.root[operand]
                guard parameterOffsets[candidate] == nil, !buffers.pinned.contains(candidate),
                      graph.nodes[operand].type == node.type, storageBytes(graph.nodes[candidate].type) == storageBytes(node.type),
                      buffers.end[candidate] == node.id, buffers.start[candidate] != nil,
                      !readsElsewhere(node, candidate, buffers) else { continue }
                buffers.root[node.id] = candidate
                buffers.end[candidate] = buffers.end.removeValue(forKey: node.id)!
                buffers.start.removeValue(forKey: node.id)
                if buffers.pinned.remove(node.id) != nil { buffers.pinned.insert(candidate) }
                buffers.inPlace.append((node.id, operand))
                break
            }
        }
        // Views of views and of in-place results resolve to the final buffer.
        for id in 0..<count { buffers.root[id] = buffers.root[buffers.root[id]] }

        let requests = buffers.start.keys.sorted().map { id in
            BufferRequest(id: id, bytes: storageBytes(graph.nodes[id].type), start: buffers.start[id]!,
                          end: buffers.end[id]!, pinned: buffers.pinned.contains(id))
        }
        var homes: [LoweredGraph.Home] = []
        for node in graph.nodes {
            if let offset = parameterOffsets[node.id] ?? stateOffsets.launches[node.id] {
                homes.append(.parameter(offset))
            } else if let offset = viewOffsets[node.id] {
                homes.append(.parameterView(offset))
            } else if let target = updateTargets[node.id] {
                homes.append(.parameter(parameterOffsets[target]!))
            } else if isView(node.op) {
                homes.append(.alias(node.inputs[0]))
            } else {
                homes.append(.buffer(buffers.root[node.id]))
            }
        }
        return LoweredGraph(graph: graph, homes: homes, requests: requests, inPlace: buffers.inPlace,
                            parameterBytes: parameterBytes)
    }

    /// The `memory-plan` stage: places the arena buffers of `lowered` and builds the plan.
    public static func place(_ lowered: LoweredGraph) throws -> (plan: Plan, requests: [BufferRequest], memory: MemoryPlan) {
        let memory = MemoryPlanner.plan(lowered.requests, alignment: alignment)
        let locations: [ValueLocation] = lowered.homes.map { home in
            switch home {
            case .parameter(let offset): return .parameter(offset)
            case .parameterView(let offset): return .parameterView(offset)
            case .alias(let node): return .alias(node)
            case .buffer(let root): return .arena(memory.offsets[root] ?? 0)
            }
        }
        let report = PlanMemoryReport(arenaBytes: memory.arenaBytes, lowerBound: memory.lowerBound,
                                      totalRequested: memory.totalRequested, pinnedBytes: memory.pinnedBytes,
                                      fragmentation: memory.fragmentation, inPlaceCount: lowered.inPlace.count,
                                      parameterBytes: lowered.parameterBytes)
        return (Plan(graph: lowered.graph, locations: locations, memory: report), lowered.requests, memory)
    }

    /// `concat(axis 0)` nodes over distinct parameters, each parameter in one such group only.
    static func parameterConcats(_ graph: Graph) -> [Int: [Int]] {
        var groups: [Int: [Int]] = [:]
        var taken = Set<Int>()
        for node in graph.nodes {
            guard case .concat(axis: 0) = node.op, node.inputs.count >= 2,
                  node.inputs.allSatisfy({ if case .parameter = graph.nodes[$0].op { return true } else { return false } }),
                  Set(node.inputs).count == node.inputs.count, taken.isDisjoint(with: node.inputs) else { continue }
            groups[node.id] = node.inputs
            taken.formUnion(node.inputs)
        }
        return groups
    }

    /// Ops that only reinterpret their operand's memory.
    static func isView(_ op: Op) -> Bool {
        switch op {
        case .reshape, .stopGradient: return true
        default: return false
        }
    }

    static func align(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }

    /// Kernels that read element i (or row r) before writing it, so output may overwrite an operand.
    static func allowsInPlace(_ op: Op) -> Bool { op.allowsInPlace }

    /// The candidate buffer must feed this node only through same-shaped, element-aligned
    /// operands (a broadcast read of it would be clobbered).
    static func readsElsewhere(_ node: Node, _ candidate: Int, _ buffers: Buffers) -> Bool {
        if case .fused(.normModulate) = node.op, buffers.root[node.inputs[0]] != candidate { return true }
        if case .rotatePairs = node.op { return true }  // reads the neighbour of each element
        // A window reads a box of its operand, not element i at position i.
        if case .fused(.elementwise(let program)) = node.op,
           program.windows.keys.contains(where: { buffers.root[node.inputs[$0]] == candidate }) { return true }
        return false
    }
}
