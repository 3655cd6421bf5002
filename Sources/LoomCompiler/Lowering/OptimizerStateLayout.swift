import LoomIR
import LoomRuntime

/// Offsets of the fused optimizer's state in the parameter region.
struct OptimizerStateOffsets {
    /// `adamw` node → byte offset of its flat state `[p | m | v | ema]` (its result).
    var launches: [Int: Int] = [:]
}

extension PlanLowering {
    /// Lays the state operands of every `adamw` node out back to back from the current end of the
    /// parameter region, in operand order, so the node's result is the state itself. Hoisted
    /// concatenations of parameters must then fall inside that run in their own order (the
    /// optimizer fusion orders its segments so they do); their views are placed here too.
    static func layOutOptimizerState(_ graph: Graph, views: [Int: [Int]], parameterOffsets: inout [Int: Int],
                                     viewOffsets: inout [Int: Int], parameterBytes: inout Int) throws -> OptimizerStateOffsets {
        var result = OptimizerStateOffsets()
        for node in graph.nodes {
            guard case .fused(.adamw(let u)) = node.op else { continue }
            let start = parameterBytes
            for operand in node.inputs[u.segments..<u.firstScalar] {
                guard case .parameter = graph.nodes[operand].op else {
                    throw IRError("adamw %\(node.id): state operand %\(operand) (\(graph.nodes[operand].op.mnemonic)) is not a parameter or buffer")
                }
                guard parameterOffsets[operand] == nil else {
                    throw IRError("adamw %\(node.id): parameter \(graph.nodes[operand].op.parameterName ?? "%\(operand)") appears twice in the optimizer state")
                }
                parameterOffsets[operand] = parameterBytes
                parameterBytes += storageBytes(graph.nodes[operand].type)
            }
            guard parameterBytes - start == storageBytes(node.type) else {
                throw IRError("adamw %\(node.id): its result (\(node.type)) is not the size of its state operands")
            }
            parameterBytes = align(parameterBytes)
            result.launches[node.id] = start
        }
        guard !result.launches.isEmpty else { return result }
        for (concat, members) in views.sorted(by: { $0.key < $1.key }) {
            let placed = members.filter { parameterOffsets[$0] != nil }
            if placed.isEmpty { continue }
            var expected = parameterOffsets[members[0]]
            for member in members {
                guard let offset = parameterOffsets[member], offset == expected else {
                    throw IRError("concat %\(concat) of parameters needs \(graph.nodes[member].op.parameterName ?? "%\(member)") right after the previous member, but the optimizer state lays it out elsewhere")
                }
                expected = offset + storageBytes(graph.nodes[member].type)
            }
            viewOffsets[concat] = parameterOffsets[members[0]]
        }
        return result
    }

    /// Byte offset of `node` when it is a slice along axis 0 of an `adamw` result (a view of the
    /// updated state).
    static func sliceOfState(_ node: Node, _ launches: [Int: Int]) -> Int? {
        guard case .slice(axis: 0, let start, _) = node.op, let base = launches[node.inputs[0]] else { return nil }
        return base + start * 4
    }

    /// The state is overwritten where it lies: nothing may read it after the update.
    static func checkInPlaceState(_ graph: Graph, _ launches: [Int: Int], lastRead: [Int]) throws {
        for (id, _) in launches {
            guard case .fused(.adamw(let u)) = graph.nodes[id].op else { continue }
            for operand in graph.nodes[id].inputs[u.segments..<u.firstScalar] where lastRead[operand] > id {
                throw IRError("adamw %\(id) updates \(graph.nodes[operand].op.parameterName ?? "%\(operand)") in place, but %\(lastRead[operand]) (\(graph.nodes[lastRead[operand]].op.mnemonic)) reads it afterwards")
            }
        }
    }
}
