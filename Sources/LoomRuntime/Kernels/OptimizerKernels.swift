import CLoomKernels
import LoomIR

extension KernelLibrary {
    /// `sum_squares`: Σᵢ Σⱼ xᵢ[j]² over every operand, one pass (see `loom_sum_squares`).
    static func sumSquares(_ x: [TensorRef], _ y: TensorRef) {
        withSegments(x.count, count: { x[$0].count }) { starts in
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: x.count) { pointers in
                for (i, ref) in x.enumerated() { pointers[i] = UnsafePointer(ref.floats) }
                y.floats[0] = loom_sum_squares(pointers.baseAddress!, starts, Int64(x.count))
            }
        }
    }

    /// `adamw`: the optimizer step over every segment, written to y = [p | m | v | ema] (the state
    /// operands themselves when the plan laid them out that way).
    static func adamw(_ u: AdamWUpdate, _ x: [TensorRef], _ y: TensorRef) {
        let n = u.segments
        var scalarIndex = u.firstScalar
        func next() -> Float {
            defer { scalarIndex += 1 }
            return x[scalarIndex].floats[0]
        }
        var k = loom_adamw_scalars()
        (k.beta1, k.beta2, k.eps) = (u.beta1, u.beta2, u.eps)
        k.step = next()
        k.sqrt_bias2 = next()
        k.coef = u.clip ? next() : 1
        k.decay_factor = u.decay ? next() : 1
        (k.ema_decay, k.ema_keep) = u.ema ? (next(), next()) : (0, 1)
        (k.clip, k.decay, k.ema) = (u.clip ? 1 : 0, u.decay ? 1 : 0, u.ema ? 1 : 0)
        withSegments(n, count: { x[$0].count }) { starts in
            // Operand pointers: the gradients, then each state part, segment by segment.
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 5 * n) { table in
                for part in 0..<5 {
                    for i in 0..<n {
                        let operand = part == 0 ? i : (part - 1 < u.stateParts ? u.stateOperand(part: part - 1, segment: i) : -1)
                        table[part * n + i] = operand >= 0 ? UnsafePointer(x[operand].floats) : nil
                    }
                }
                let base = table.baseAddress!
                loom_adamw(base, base + n, base + 2 * n, base + 3 * n, base + 4 * n, starts, Int64(n), y.floats, k)
            }
        }
    }

    /// Calls `body` with the n + 1 segment starts (prefix sums of `count`), on the stack.
    private static func withSegments(_ n: Int, count: (Int) -> Int, _ body: (UnsafePointer<Int64>) -> Void) {
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: n + 1) { starts in
            starts[0] = 0
            for i in 0..<n { starts[i + 1] = starts[i] + Int64(count(i)) }
            body(UnsafePointer(starts.baseAddress!))
        }
    }
}
