import LoomIR

/// Maximal chains of elementwise ops (unary, affine, binary, with fill constants folded in) that
/// produce one value become one `fused_elementwise` kernel: a program evaluated in one pass over
/// cache-sized tiles. An intermediate joins the chain when it has the root's shape and is private
/// (read once, not an output) or read only by the chain (`u + s·(c − u)`), or when it is one unary/affine op on a value that stays in memory
/// anyway: then each chain reading it recomputes it (one instruction per element instead of a
/// pass that writes and re-reads a whole tensor), and once every reader has, simplify drops it.
/// Operands cut out by `slice` nodes (halves of a doubled batch, channel ranges) are read in
/// place through an `OperandWindow`, so the slices' copies disappear.
enum ElementwiseFusion {
    static let maxRegisters = 48

    static func isElementwise(_ op: Op) -> Bool {
        switch op {
        case .unary, .affine, .binary: return true
        default: return false
        }
    }

    static func fill(_ node: Node) -> Float? {
        if case .constant(let v) = node.op { return v }
        return nil
    }

    static func apply(_ plan: inout FusionPlan) {
        for root in plan.graph.nodes.reversed() where isElementwise(root.op) && !plan.isClaimed(root.id) {
            var members: Set<Int> = [root.id]
            var duplicates: Set<Int> = []   // recomputed here, kept for their other readers
            var deferred: Set<Int> = []     // read outside the chain so far; may join once every reader has
            var frontier = [root.id]
            func fits() -> Bool {
                guard members.count + externalCount(members, plan) + constantCount(members, plan) > maxRegisters else {
                    return true
                }
                plan.refuse("fused_elementwise", at: root.id, "chain would need more than \(maxRegisters) registers")
                return false
            }
            while true {
                while let id = frontier.popLast() {
                    for operand in plan.node(id).inputs where !members.contains(operand) {
                        let node = plan.node(operand)
                        guard isElementwise(node.op), node.type.shape == root.type.shape else { continue }
                        let recomputed = !plan.isPrivate(operand) && !isInternal(operand, members.subtracting(duplicates), plan)
                        guard !recomputed || isRecomputable(node, plan) else {
                            deferred.insert(operand)
                            continue
                        }
                        if recomputed { duplicates.insert(operand) }
                        members.insert(operand)
                        guard fits() else {
                            members.remove(operand)
                            duplicates.remove(operand)
                            continue
                        }
                        if !recomputed { frontier.append(operand) }
                    }
                }
                // A value whose readers all joined the chain is computed once inside it (the halves
                // of a CFG step read the unconditional value twice).
                let computed = members.subtracting(duplicates)
                let ready = deferred.union(duplicates).filter { isInternal($0, computed, plan) }.sorted()
                guard !ready.isEmpty else { break }
                for id in ready {
                    deferred.remove(id)
                    let wasMember = duplicates.remove(id) != nil
                    members.insert(id)
                    guard wasMember || fits() else {
                        members.remove(id)
                        continue
                    }
                    frontier.append(id)
                }
            }
            guard members.count >= 2 else { continue }
            let (program, inputs, slices) = compile(members.sorted(), plan)
            let shapes = inputs.indices.map { program.operandShape($0, of: plan.node(inputs[$0]).type.shape) }
            guard shapes.reduce([Int](), { TypeInference.broadcastShapes($0, $1) ?? [-1] }) == root.type.shape else {
                continue
            }
            plan.replace(root: root.id, with: .fused(.elementwise(program)), inputs: inputs,
                         absorbing: members.subtracting(duplicates).subtracting([root.id]).union(slices).sorted())
        }
    }

    /// A value every reader of which is computed by the chain (not merely recomputed there for
    /// readers outside it), and that is not an output or claimed.
    static func isInternal(_ id: Int, _ members: Set<Int>, _ plan: FusionPlan) -> Bool {
        !plan.outputs.contains(id) && !plan.isClaimed(id) && plan.consumers[id].allSatisfy(members.contains)
    }

    /// A shared unary or affine op whose operand is never absorbed into another chain (it is not
    /// elementwise, or it has several readers itself), so recomputing it from that operand inside a
    /// chain is always possible.
    static func isRecomputable(_ node: Node, _ plan: FusionPlan) -> Bool {
        switch node.op {
        case .unary, .affine: break
        default: return false
        }
        guard !plan.isClaimed(node.id), !plan.outputs.contains(node.id) else { return false }
        let operand = plan.node(node.inputs[0])
        return fill(operand) == nil && (!isElementwise(operand.op) || plan.uses[operand.id] > 1)
    }

    /// Fill constants read by the members (each becomes a `const` instruction, so a register).
    static func constantCount(_ members: Set<Int>, _ plan: FusionPlan) -> Int {
        var constants = Set<Int>()
        for id in members {
            for operand in plan.node(id).inputs where fill(plan.node(operand)) != nil { constants.insert(operand) }
        }
        return constants.count
    }

    static func externalCount(_ members: Set<Int>, _ plan: FusionPlan) -> Int {
        var external = Set<Int>()
        for id in members {
            for operand in plan.node(id).inputs where !members.contains(operand) && fill(plan.node(operand)) == nil {
                external.insert(operand)
            }
        }
        return external.count
    }

    /// An operand made by `slice` nodes is read in place: the kernel takes the tensor under the
    /// slices with a window. Returns that tensor, the window, and the slices no one else reads
    /// (absorbed into the kernel).
    static func window(_ id: Int, readers: Set<Int>, _ plan: FusionPlan) -> (node: Int, window: OperandWindow, absorbed: [Int])? {
        var node = id
        var cuts: [(axis: Int, start: Int, end: Int)] = []
        var absorbed: [Int] = []
        var exclusive = true
        while case .slice(let axis, let start, let end) = plan.node(node).op, !plan.isClaimed(node) {
            let allowed = absorbed.isEmpty ? readers : [absorbed.last!]
            exclusive = exclusive && !plan.outputs.contains(node) && plan.consumers[node].allSatisfy(allowed.contains)
            if exclusive { absorbed.append(node) }
            cuts.append((axis, start, end))
            node = plan.node(node).inputs[0]
        }
        guard !cuts.isEmpty, plan.node(node).type.dtype == .f32 else { return nil }
        var window = OperandWindow.whole(plan.node(node).type.shape)
        for cut in cuts.reversed() { window = window.sliced(axis: cut.axis, start: cut.start, end: cut.end) }
        return (node, window, absorbed)
    }

    /// The program for `members` (in graph order; the last is the root), its operands and the
    /// slices it reads through windows instead.
    static func compile(_ members: [Int], _ plan: FusionPlan) -> (ElementwiseProgram, [Int], [Int]) {
        var operands: [Int] = []
        for id in members {
            for operand in plan.node(id).inputs
            where !members.contains(operand) && fill(plan.node(operand)) == nil && !operands.contains(operand) {
                operands.append(operand)
            }
        }
        var inputs: [Int] = [], windows: [Int: OperandWindow] = [:], slices: [Int] = []
        for (i, operand) in operands.enumerated() {
            guard let read = window(operand, readers: Set(members), plan), !members.contains(read.node) else {
                inputs.append(operand)
                continue
            }
            inputs.append(read.node)
            windows[i] = read.window
            slices += read.absorbed
        }
        var register: [Int: Int] = [:]
        for (i, id) in operands.enumerated() { register[id] = i }
        var instructions: [ElementwiseProgram.Instruction] = []
        func operand(_ id: Int) -> Int {
            if let r = register[id] { return r }
            let value = fill(plan.node(id))!
            instructions.append(.constant(value))
            let r = inputs.count + instructions.count - 1
            register[id] = r
            return r
        }
        for id in members {
            let node = plan.node(id)
            let instruction: ElementwiseProgram.Instruction
            switch node.op {
            case .unary(let f): instruction = .unary(f, operand(node.inputs[0]))
            case .affine(let s, let b): instruction = .affine(operand(node.inputs[0]), scale: s, shift: b)
            case .binary(let f): instruction = .binary(f, operand(node.inputs[0]), operand(node.inputs[1]))
            default: preconditionFailure("not elementwise")
            }
            instructions.append(instruction)
            register[id] = inputs.count + instructions.count - 1
        }
        return (ElementwiseProgram(inputCount: inputs.count, instructions: instructions, windows: windows), inputs,
                slices)
    }
}
