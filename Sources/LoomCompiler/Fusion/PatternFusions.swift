import LoomIR

/// `h·(1 + scale) + shift` on `layer_norm(x)` or `rms_norm(x)·w` → `norm_modulate`.
enum NormModulateFusion {
    static func apply(_ plan: inout FusionPlan) {
        for root in plan.graph.nodes where root.op == .binary(.add) && !plan.isClaimed(root.id) {
            let (m, shiftView) = (plan.node(root.inputs[0]), plan.node(root.inputs[1]))
            guard m.op == .binary(.mul), case .reshape = shiftView.op, m.type.rank == 3 else { continue }
            let (h, scaleP1) = (plan.node(m.inputs[0]), plan.node(m.inputs[1]))
            guard scaleP1.op == .affine(scale: 1, shift: 1), h.type == m.type, root.type == m.type else { continue }
            let scaleView = plan.node(scaleP1.inputs[0])
            guard case .reshape = scaleView.op else { continue }
            let (shiftVec, scaleVec) = (shiftView.inputs[0], scaleView.inputs[0])
            let (b, d) = (m.type.shape[0], m.type.shape[2])
            guard plan.node(shiftVec).type.shape == [b, d], plan.node(scaleVec).type.shape == [b, d] else { continue }
            var interior = [m.id, scaleP1.id]
            let op: Op
            let inputs: [Int]
            if case .layerNorm(let eps) = h.op {
                (op, inputs) = (.fused(.normModulate(eps: eps, rms: false)), [h.inputs[0], shiftVec, scaleVec])
            } else if h.op == .binary(.mul), case .rmsNorm(let eps) = plan.node(h.inputs[0]).op,
                      plan.node(h.inputs[1]).type.shape == [d] {
                let norm = plan.node(h.inputs[0])
                guard plan.isPrivate(norm.id) else {
                    plan.refuse("norm_modulate", at: root.id, "the rms_norm value \(plan.readers(norm.id))")
                    continue
                }
                interior.append(norm.id)
                (op, inputs) = (.fused(.normModulate(eps: eps, rms: true)), [norm.inputs[0], h.inputs[1], shiftVec, scaleVec])
            } else {
                continue
            }
            guard plan.isPrivate(h.id), plan.isPrivate(m.id) else {
                plan.refuse("norm_modulate", at: root.id, "the normalised value \(plan.readers(h.id))")
                continue
            }
            guard plan.isPrivate(scaleP1.id) else { continue }
            interior.append(h.id)
            if plan.isPrivate(scaleView.id) { interior.append(scaleView.id) }
            if plan.isPrivate(shiftView.id) { interior.append(shiftView.id) }
            plan.replace(root: root.id, with: op, inputs: inputs, absorbing: interior)
        }
    }
}

/// `matmul(x, W, transpose_b) + bias` (then a private activation) → `linear`.
enum LinearFusion {
    static let activations: Set<UnaryFunction> = [.geluTanh, .silu, .relu, .tanh, .sigmoid]

    static func apply(_ plan: inout FusionPlan) {
        for add in plan.graph.nodes where add.op == .binary(.add) && !plan.isClaimed(add.id) {
            let mm = plan.node(add.inputs[0]), bias = plan.node(add.inputs[1])
            guard mm.op == .matmul(transposeA: false, transposeB: true), plan.isPrivate(mm.id),
                  plan.node(mm.inputs[1]).type.rank == 2, bias.type.shape == [mm.type.shape.last!] else { continue }
            var root = add.id, activation: UnaryFunction?
            var interior = [mm.id]
            if plan.isPrivate(add.id), let consumer = plan.consumers[add.id].first,
               case .unary(let f) = plan.node(consumer).op, activations.contains(f), !plan.isClaimed(consumer) {
                activation = f
                root = consumer
                interior.append(add.id)
            } else if let consumer = plan.consumers[add.id].first(where: {
                          if case .unary(let f) = plan.node($0).op { return activations.contains(f) } else { return false }
                      }), case .unary(let f) = plan.node(consumer).op {
                plan.refuse("linear epilogue \(f.rawValue)", at: consumer, "the pre-activation \(plan.readers(add.id))")
            }
            plan.replace(root: root, with: .fused(.linear(activation: activation)),
                         inputs: [mm.inputs[0], mm.inputs[1], bias.id], absorbing: interior)
        }
    }
}

/// `matmul(softmax(matmul(q·s, k, transpose_b)), v)` → `attention` when the scores and
/// probabilities are private (inference graphs).
enum AttentionFusion {
    static func apply(_ plan: inout FusionPlan) {
        for root in plan.graph.nodes where root.op == .matmul(transposeA: false, transposeB: false)
            && root.type.rank == 4 && !plan.isClaimed(root.id) {
            let probs = plan.node(root.inputs[0])
            guard probs.op == .softmax else { continue }
            let scores = plan.node(probs.inputs[0])
            guard scores.op == .matmul(transposeA: false, transposeB: true) else { continue }
            let scaled = plan.node(scores.inputs[0])
            guard case .affine(let scale, 0) = scaled.op else { continue }
            guard plan.isPrivate(probs.id), plan.isPrivate(scores.id), plan.isPrivate(scaled.id) else {
                plan.refuse("attention", at: root.id, "the probabilities \(plan.readers(probs.id))")
                continue
            }
            plan.replace(root: root.id, with: .fused(.attention(scale: scale)),
                         inputs: [scaled.inputs[0], scores.inputs[1], root.inputs[1]],
                         absorbing: [probs.id, scores.id, scaled.id])
        }
    }
}

/// The head split and merge around a fused `attention` → `token_attention` on the qkv projection:
/// `reshape(permute(attention(q, k, v), [0, 2, 1, 3]), [B, T, H·d])` where q, k, v are
/// `reshape(slice(permute(reshape(qkv, [B, T, 3, H, d]), [2, 0, 3, 1, 4]), axis 0, i))`.
enum TokenAttentionFusion {
    static func apply(_ plan: inout FusionPlan) {
        for (root, replacement) in plan.replacements {
            guard case .fused(.attention(let scale)) = replacement.op, plan.uses[root] == 1, !plan.outputs.contains(root),
                  let merge = plan.consumers[root].first, plan.node(merge).op == .permute(perm: [0, 2, 1, 3]),
                  plan.isPrivate(merge), let flat = plan.consumers[merge].first,
                  case .reshape = plan.node(flat).op, !plan.isClaimed(flat) else { continue }
            guard let split = headSplit(plan, replacement.inputs) else { continue }
            let (b, t) = (split.qkvType.shape[0], split.qkvType.shape[1])
            guard plan.node(flat).type.shape == [b, t, split.qkvType.shape[2] / 3] else { continue }
            let interior = split.interior + [root, merge] + (plan.groups[root] ?? [])
            plan.replacements.removeValue(forKey: root)
            plan.groups.removeValue(forKey: root)
            plan.replace(root: flat, with: .fused(.tokenAttention(heads: split.heads, scale: scale)),
                         inputs: [split.qkv], absorbing: interior)
        }
    }

    /// q, k, v as slices 0, 1, 2 of one head split of a [B, T, 3·H·d] tensor, every interior node
    /// private to the split (the permute is read by exactly the three slices).
    private static func headSplit(_ plan: FusionPlan, _ operands: [Int])
        -> (qkv: Int, qkvType: TensorType, heads: Int, interior: [Int])? {
        var interior: [Int] = []
        var permute: Int?
        for (index, operand) in operands.enumerated() {
            let view = plan.node(operand)
            guard case .reshape = view.op, plan.isPrivate(view.id) else { return nil }
            let slice = plan.node(view.inputs[0])
            guard slice.op == .slice(axis: 0, start: index, end: index + 1), plan.isPrivate(slice.id) else { return nil }
            guard permute == nil || permute == slice.inputs[0] else { return nil }
            permute = slice.inputs[0]
            interior += [view.id, slice.id]
        }
        guard let permuteID = permute, plan.node(permuteID).op == .permute(perm: [2, 0, 3, 1, 4]),
              plan.uses[permuteID] == 3, !plan.outputs.contains(permuteID), !plan.isClaimed(permuteID) else { return nil }
        let split = plan.node(plan.node(permuteID).inputs[0])
        guard case .reshape(let shape) = split.op, shape.count == 5, shape[2] == 3,
              plan.isPrivate(split.id) else { return nil }
        let qkv = plan.node(split.inputs[0])
        guard qkv.type.shape == [shape[0], shape[1], 3 * shape[3] * shape[4]] else { return nil }
        return (qkv.id, qkv.type, shape[3], interior + [permuteID, split.id])
    }
}
