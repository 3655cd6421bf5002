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
