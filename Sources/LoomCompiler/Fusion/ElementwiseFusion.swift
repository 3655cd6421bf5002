import LoomIR

/// Maximal chains of elementwise ops (unary, affine, binary, with fill constants folded in) that
/// produce one value become one `fused_elementwise` kernel: a program evaluated in one pass over
/// cache-sized tiles. An intermediate joins the chain when it has the root's shape and is private
/// (read once, not an output), or when it is one unary/affine op on a value that stays in memory
/// anyway: then each chain reading it recomputes it (one instruction per element instead of a
/// pass that writes and re-reads a whole tensor), and once every reader has, simplify drops it.
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
            var frontier = [root.id]
            while let id = frontier.popLast() {
                for operand in plan.node(id).inputs where !members.contains(operand) {
                    let node = plan.node(operand)
                    guard isElementwise(node.op), node.type.shape == root.type.shape else { continue }
                    let recomputed = !plan.isPrivate(operand)
                    guard !recomputed || isRecomputable(node, plan) else { continue }
                    if recomputed { duplicates.insert(operand) }
                    members.insert(operand)
                    if members.count + externalCount(members, plan) + constantCount(members, plan) > maxRegisters {
                        members.remove(operand)
                        duplicates.remove(operand)
                        plan.refuse("fused_elementwise", at: root.id, "chain would need more than \(maxRegisters) registers")
                        continue
                    }
                    if !recomputed { frontier.append(operand) }
                }
            }
            guard members.count >= 2 else { continue }
            let (program, inputs) = compile(members.sorted(), plan)
            let shapes = inputs.map { plan.node($0).type.shape }
            guard shapes.reduce([Int](), { TypeInference.broadcastShapes($0, $1) ?? [-1] }) == root.type.shape else {
                continue
            }
            plan.replace(root: root.id, with: .fused(.elementwise(program)), inputs: inputs,
                         absorbing: members.subtracting(duplicates).subtracting([root.id]).sorted())
        }
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

    /// The program for `members` (in graph order; the last is the root) and its operands.
    static func compile(_ members: [Int], _ plan: FusionPlan) -> (ElementwiseProgram, [Int]) {
        var inputs: [Int] = []
        for id in members {
            for operand in plan.node(id).inputs
            where !members.contains(operand) && fill(plan.node(operand)) == nil && !inputs.contains(operand) {
                inputs.append(operand)
            }
        }
        var register: [Int: Int] = [:]
        for (i, id) in inputs.enumerated() { register[id] = i }
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
        return (ElementwiseProgram(inputCount: inputs.count, instructions: instructions), inputs)
    }
}
