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

/// Random elementwise DAGs for the lowering audit.
extension LoweringTests {
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
}
