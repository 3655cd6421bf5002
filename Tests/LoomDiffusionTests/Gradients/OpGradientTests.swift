import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// The registered per-op gradient checks (see `GradientCheckHarness` for step and tolerance).
/// Every differentiable operand is a trainable parameter, integer operands are inputs.
enum OpGradientCases {
    static var all: [GradientCase] {
        leaves + unary + binary + matmul + reductions + normalizations + layout + indexing
            + castAndStopGradient + composites
    }

    // MARK: leaves

    static var leaves: [GradientCase] {
        [
            GradientCase("param: identity", covers: ["param"]) { c in c.param("p", [2, 3]) },
            GradientCase("param: rank-0", covers: ["param"]) { c in c.param("p", []) },
            // Inputs and buffers get no gradient output (the harness checks the set of outputs).
            GradientCase("input and buffer: no gradient", covers: ["input", "buffer"]) { c in
                c.param("p", [2, 3]) * c.input("x", [2, 3]) + c.buffer("b", [3])
            },
            GradientCase("constant in an expression", covers: ["constant"]) { c in
                let p = c.param("p", [2, 3])
                return p * c.b.constant(2.5, shape: [2, 3]) + c.b.constant(-0.5) * p.square()
            },
            GradientCase("iota in an expression", covers: ["iota"]) { c in
                let p = c.param("p", [3, 4])
                return p * c.b.iota(shape: [3, 4], axis: 1) + c.b.iota(shape: [3, 1], axis: 0) * p.sin()
            },
            // A parameter y does not depend on: a zero gradient output, and zero finite differences.
            GradientCase("constant and iota only: parameter off the path", covers: ["constant", "iota"],
                         expectations: ["p": .zero(fdToo: true)]) { c in
                _ = c.param("p", [2])
                return c.b.iota(shape: [2, 3], axis: 0) + c.b.constant(1, shape: [2, 3])
            },
        ]
    }

    // MARK: elementwise

    /// Inputs for each unary function: ≥ 0.5 for log/sqrt/rsqrt/recip, |x| ≥ 0.1 (away from the
    /// kink) for abs/relu/sign, standard normal elsewhere.
    static func unarySample(_ f: UnaryFunction) -> GradientSample {
        switch f {
        case .log, .sqrt, .rsqrt, .recip: return .uniform(0.5, 2)
        case .abs, .relu, .sign: return .awayFromZero(0.1, 1.5)
        case .neg, .exp, .tanh, .sin, .cos, .silu, .geluTanh, .sigmoid, .square: return .standard
        }
    }

    static var unary: [GradientCase] {
        UnaryFunction.allCases.flatMap { f -> [GradientCase] in
            // sign is piecewise constant: no gradient, and its finite differences vanish too.
            let expectations: [String: GradientExpectation] = f == .sign ? ["p": .zero(fdToo: true)] : [:]
            return [
                GradientCase("\(f.rawValue) [2,3,4]", covers: [f.rawValue], expectations: expectations) { c in
                    c.param("p", [2, 3, 4], unarySample(f)).unary(f)
                },
                GradientCase("\(f.rawValue) rank-0", covers: [f.rawValue], expectations: expectations) { c in
                    c.param("p", [], unarySample(f)).unary(f)
                },
            ]
        } + [
            GradientCase("sign times exp", covers: ["sign"]) { c in
                let p = c.param("p", [5], .awayFromZero(0.1, 1.5))
                return p.unary(.sign) * p.exp()
            },
            GradientCase("affine", covers: ["affine"]) { c in c.param("p", [2, 5]).affine(scale: -1.5, shift: 0.3) },
            GradientCase("affine scale 0 and 0.25", covers: ["affine"]) { c in
                c.param("p", [4]).affine(scale: 0, shift: 2) + c.param("q", [4]).affine(scale: 0.25, shift: 0)
            },
        ]
    }

    /// Operand shapes exercising NumPy broadcasting on either side, rank-0 and [1] included.
    static let binaryShapes: [([Int], [Int])] = [
        ([2, 3], [2, 3]), ([2, 3, 4], [3, 1]), ([3, 1], [2, 3, 4]), ([2, 3, 4], [1]),
        ([2, 3, 4], []), ([], [2, 3]), ([2, 1, 4], [3, 1]), ([1, 3], [4, 1]), ([], []),
    ]

    /// max/min operands come from two interleaved lattices (never within 0.09 of each other);
    /// the denominator of div stays away from zero.
    static func binarySamples(_ f: BinaryFunction) -> (GradientSample, GradientSample) {
        switch f {
        case .add, .sub, .mul: return (.standard, .standard)
        case .div: return (.standard, .awayFromZero(0.5, 2))
        case .max, .min: return (.lattice(offset: 0.15), .lattice(offset: 0))
        }
    }

    static var binary: [GradientCase] {
        BinaryFunction.allCases.flatMap { f -> [GradientCase] in
            let (sa, sb) = binarySamples(f)
            let broadcasting = binaryShapes.map { shapes in
                GradientCase("\(f.rawValue) \(describeShape(shapes.0)) \(describeShape(shapes.1))",
                             covers: [f.rawValue]) { c in
                    c.b.append(.binary(f), [c.param("a", shapes.0, sa), c.param("b", shapes.1, sb)])
                }
            }
            // The same value as both operands: both contributions must add up (for max/min the
            // tie rule gives each side ½, summing to the true derivative 1).
            let selfCase = GradientCase("\(f.rawValue) of a tensor with itself", covers: [f.rawValue]) { c in
                let p = c.param("p", [2, 3], f == .div ? .awayFromZero(0.5, 2) : .standard)
                return c.b.append(.binary(f), [p, p])
            }
            return broadcasting + [selfCase]
        }
    }

    // MARK: matmul

    static func matmulCase(_ batchA: [Int], _ batchB: [Int], m: Int, k: Int, n: Int,
                           ta: Bool, tb: Bool) -> GradientCase {
        let aShape = batchA + (ta ? [k, m] : [m, k]), bShape = batchB + (tb ? [n, k] : [k, n])
        return GradientCase("matmul\(ta ? "ᵀ" : "")\(tb ? "ᵀ" : "") \(describeShape(aShape)) × \(describeShape(bShape))",
                            covers: ["matmul"]) { c in
            c.param("a", aShape).matmul(c.param("b", bShape), transposeA: ta, transposeB: tb)
        }
    }

    static var matmul: [GradientCase] {
        let shapes: [([Int], [Int], Int, Int, Int)] = [
            ([], [], 3, 4, 5),          // plain 2-D
            ([2, 3], [], 4, 5, 6),      // [2,3,4,5] × [5,6]: rank-2 B shared over the batch
            ([2, 1], [1, 2], 3, 4, 5),  // [2,1,3,4] × [1,2,4,5]: batch axes broadcast both ways
            ([], [2], 3, 5, 2),         // rank-2 A shared over B's batch
            ([2], [2], 2, 3, 4),        // equal batches
        ]
        return shapes.flatMap { s in
            [(false, false), (false, true), (true, false), (true, true)].map { t in
                matmulCase(s.0, s.1, m: s.2, k: s.3, n: s.4, ta: t.0, tb: t.1)
            }
        } + [
            GradientCase("matmul: A times itself transposed", covers: ["matmul"]) { c in
                let a = c.param("a", [3, 4])
                return a.matmul(a, transposeB: true)
            },
        ]
    }

    // MARK: reductions

    static var reductions: [GradientCase] {
        let axesSets: [[Int]] = [[0], [1], [2], [0, 2], [0, 1, 2]]
        return ReduceFunction.allCases.flatMap { f -> [GradientCase] in
            // max: all values distinct (gaps ≥ 0.16), so every group has a clear winner.
            let sample: GradientSample = f == .max ? .distinct : .standard
            let family = "reduce_" + f.rawValue
            return axesSets.flatMap { axes in
                [false, true].map { keep in
                    GradientCase("\(family) [2,3,4] axes \(axes)\(keep ? " keep_dims" : "")", covers: [family]) { c in
                        c.param("p", [2, 3, 4], sample).reduce(f, axes: axes, keepDims: keep)
                    }
                }
            } + [
                GradientCase("\(family) [5] axis 0", covers: [family]) { c in
                    c.param("p", [5], sample).reduce(f, axes: [0])
                },
                GradientCase("\(family) [3,1] over the unit axis", covers: [family]) { c in
                    c.param("p", [3, 1], sample).reduce(f, axes: [1])
                },
            ]
        }
    }

    // MARK: softmax and norms

    static var normalizations: [GradientCase] {
        [
            GradientCase("softmax [2,5]", covers: ["softmax"]) { c in c.param("p", [2, 5]).softmax() },
            GradientCase("softmax [6]", covers: ["softmax"]) { c in c.param("p", [6], .normal(std: 2)).softmax() },
            GradientCase("softmax [2,2,3]", covers: ["softmax"]) { c in c.param("p", [2, 2, 3]).softmax() },
            GradientCase("layer_norm [3,6]", covers: ["layer_norm"]) { c in c.param("p", [3, 6]).layerNorm(eps: 1e-6) },
            GradientCase("layer_norm [2,2,5] eps 0.1", covers: ["layer_norm"]) { c in
                c.param("p", [2, 2, 5]).layerNorm(eps: 0.1)
            },
            GradientCase("layer_norm [8]", covers: ["layer_norm"]) { c in c.param("p", [8], .normal(std: 3)).layerNorm(eps: 1e-5) },
            GradientCase("layer_norm [3,1] (constant output)", covers: ["layer_norm"]) { c in
                c.param("p", [3, 1]).layerNorm(eps: 1e-6)
            },
            GradientCase("rms_norm [3,6]", covers: ["rms_norm"]) { c in c.param("p", [3, 6]).rmsNorm(eps: 1e-6) },
            GradientCase("rms_norm [2,2,5] eps 0.1", covers: ["rms_norm"]) { c in c.param("p", [2, 2, 5]).rmsNorm(eps: 0.1) },
            GradientCase("rms_norm [8]", covers: ["rms_norm"]) { c in c.param("p", [8], .normal(std: 0.3)).rmsNorm(eps: 1e-5) },
        ]
    }

    // MARK: layout

    static var layout: [GradientCase] {
        [
            GradientCase("reshape [2,3,4] → [4,6]", covers: ["reshape"]) { c in c.param("p", [2, 3, 4]).reshape([4, 6]) },
            GradientCase("reshape [6] → [2,1,3]", covers: ["reshape"]) { c in
                c.param("p", [6]).reshape([2, 1, 3]) * c.param("q", [2, 1, 3])
            },
            GradientCase("reshape [] → [1,1]", covers: ["reshape"]) { c in c.param("p", []).reshape([1, 1]) },
            GradientCase("permute [2,3,4] by [2,0,1]", covers: ["permute"]) { c in c.param("p", [2, 3, 4]).permute([2, 0, 1]) },
            GradientCase("permute [3,4] by [1,0]", covers: ["permute"]) { c in c.param("p", [3, 4]).permute([1, 0]) },
            GradientCase("permute [2,3,2,2] by [0,2,1,3]", covers: ["permute"]) { c in
                c.param("p", [2, 3, 2, 2]).permute([0, 2, 1, 3]).square()
            },
            GradientCase("slice [4,5] axis 0 1..<3", covers: ["slice"]) { c in c.param("p", [4, 5]).slice(axis: 0, 1..<3) },
            GradientCase("slice [4,5] axis 1 2..<5", covers: ["slice"]) { c in c.param("p", [4, 5]).slice(axis: 1, 2..<5) },
            GradientCase("slice [2,6,3] axis 1 0..<2", covers: ["slice"]) { c in c.param("p", [2, 6, 3]).slice(axis: 1, 0..<2) },
            GradientCase("slice: whole axis", covers: ["slice"]) { c in c.param("p", [3, 2]).slice(axis: 0, 0..<3) },
            // Overlapping, gapped and disjoint slices of one value plus a dense use (the adjoint
            // table assembles slices with concat and zero gaps, and sums overlapping ones).
            GradientCase("slice: overlapping, gapped and dense uses", covers: ["slice"]) { c in
                let p = c.param("p", [4, 5])
                let parts = [p.slice(axis: 1, 0..<2), p.slice(axis: 1, 1..<3).square(), p.slice(axis: 1, 4..<5)]
                let rows = p.slice(axis: 0, 3..<4).sin()
                return concat(parts, axis: 1) + p + rows
            },
            GradientCase("slice: the six adaLN chunks", covers: ["slice"]) { c in
                let chunks = c.param("p", [2, 12]).chunk(6, axis: 1)
                return chunks[0] * chunks[1] + chunks[2].exp() - chunks[5] * chunks[3]
            },
            GradientCase("concat axis 1 of three", covers: ["concat"]) { c in
                concat([c.param("a", [2, 3]), c.param("b", [2, 1]), c.param("c", [2, 4])], axis: 1)
            },
            GradientCase("concat axis 0 of three", covers: ["concat"]) { c in
                concat([c.param("a", [1, 3, 2]), c.param("b", [2, 3, 2]), c.param("c", [3, 3, 2])], axis: 0)
            },
            GradientCase("concat last axis of three", covers: ["concat"]) { c in
                concat([c.param("a", [2, 2, 1]), c.param("b", [2, 2, 3]), c.param("c", [2, 2, 2])], axis: 2)
            },
            GradientCase("concat of a tensor with itself", covers: ["concat"]) { c in
                let p = c.param("p", [2, 3])
                return concat([p, c.param("q", [2, 2]), p.exp()], axis: 1)
            },
            GradientCase("broadcast [3,1] → [2,3,4]", covers: ["broadcast"]) { c in c.param("p", [3, 1]).broadcast(to: [2, 3, 4]) },
            GradientCase("broadcast [] → [2,3]", covers: ["broadcast"]) { c in c.param("p", []).broadcast(to: [2, 3]) },
            GradientCase("broadcast [4] → [3,4]", covers: ["broadcast"]) { c in c.param("p", [4]).broadcast(to: [3, 4]) },
            GradientCase("broadcast [1,4] → [2,3,4]", covers: ["broadcast"]) { c in c.param("p", [1, 4]).broadcast(to: [2, 3, 4]) },
            GradientCase("broadcast to its own shape", covers: ["broadcast"]) { c in c.param("p", [2, 3]).broadcast(to: [2, 3]) },
            GradientCase("patchify [1,2,4,4] p2", covers: ["patchify"]) { c in c.param("p", [1, 2, 4, 4]).patchify(2) },
            GradientCase("patchify [2,1,4,6] p2", covers: ["patchify"]) { c in c.param("p", [2, 1, 4, 6]).patchify(2) },
            GradientCase("patchify [1,3,2,2] p1", covers: ["patchify"]) { c in c.param("p", [1, 3, 2, 2]).patchify(1) },
            GradientCase("unpatchify [1,4,4] p2 2×2", covers: ["unpatchify"]) { c in
                c.param("p", [1, 4, 4]).unpatchify(2, gridH: 2, gridW: 2)
            },
            GradientCase("unpatchify [2,6,8] p2 2×3", covers: ["unpatchify"]) { c in
                c.param("p", [2, 6, 8]).unpatchify(2, gridH: 2, gridW: 3)
            },
            GradientCase("unpatchify [1,2,12] p2 1×2", covers: ["unpatchify"]) { c in
                c.param("p", [1, 2, 12]).unpatchify(2, gridH: 1, gridW: 2)
            },
            GradientCase("patchify then unpatchify", covers: ["patchify", "unpatchify"]) { c in
                c.param("p", [1, 2, 4, 4]).patchify(2).tanh().unpatchify(2, gridH: 2, gridW: 2)
            },
            GradientCase("rotate_pairs [3,4]", covers: ["rotate_pairs"]) { c in c.param("p", [3, 4]).rotatePairs() },
            GradientCase("rotate_pairs [2,2,6]", covers: ["rotate_pairs"]) { c in c.param("p", [2, 2, 6]).rotatePairs() },
            GradientCase("rotate_pairs [2] rank 1", covers: ["rotate_pairs"]) { c in c.param("p", [2]).rotatePairs() },
            GradientCase("rotate_pairs in RoPE form", covers: ["rotate_pairs"]) { c in
                let x = c.param("x", [2, 4, 4])
                return x * c.buffer("cos", [4, 4]) + x.rotatePairs() * c.buffer("sin", [4, 4])
            },
        ]
    }

    // MARK: gather / scatter_add

    static var indexing: [GradientCase] {
        [
            // Repeated indices: the scatter_add in the VJP must accumulate.
            GradientCase("gather [5,3] by i64 [2,4] with repeats", covers: ["gather"]) { c in
                c.param("table", [5, 3]).gather(c.indices("idx", [2, 4], [0, 2, 2, 4, 1, 2, 0, 0]))
            },
            // Rows 2 and 4 are never read: zero gradient there.
            GradientCase("gather [5,2] by i32 [6], unread rows", covers: ["gather"]) { c in
                c.param("table", [5, 2]).gather(c.indices("idx", [6], [3, 3, 3, 1, 0, 3], dtype: .i32))
            },
            GradientCase("gather of a computed table", covers: ["gather"]) { c in
                c.param("table", [4, 3]).tanh().gather(c.indices("idx", [3], [1, 1, 3]))
            },
            GradientCase("scatter_add [6,3] into 5 rows with repeats", covers: ["scatter_add"]) { c in
                c.param("u", [6, 3]).scatterAdd(c.indices("idx", [6], [1, 3, 1, 0, 3, 1]), rows: 5)
            },
            GradientCase("scatter_add [2,3,2] by i32 [2,3]", covers: ["scatter_add"]) { c in
                c.param("u", [2, 3, 2]).scatterAdd(c.indices("idx", [2, 3], [0, 2, 2, 3, 0, 0], dtype: .i32), rows: 4)
            },
        ]
    }

    // MARK: cast and stop_gradient

    static var castAndStopGradient: [GradientCase] {
        [
            // Indices computed from a trainable value: truncation is locally constant (values keep
            // a fractional part in [0.25, 0.75]), so the float operand's gradient comes only from
            // its direct use, and the table's through the gather.
            GradientCase("cast f32→i64 feeding gather", covers: ["cast", "gather"]) { c in
                let p = c.param("p", [6], .nonInteger(0, 4))
                let table = c.param("table", [4, 3])
                return table.gather(p.cast(.i64)) * p.reshape([6, 1])
            },
            GradientCase("cast i64→f32 of an input", covers: ["cast"]) { c in
                c.param("p", [2, 3]) * c.indices("n", [2, 3], [0, 1, 2, -3, 5, 1]).cast(.f32)
            },
            GradientCase("cast f32→i32→f32 round trip", covers: ["cast"]) { c in
                let p = c.param("p", [5], .nonInteger(-3, 3))
                return p.exp() + p.cast(.i32).cast(.f32)
            },
            // stop_gradient is the identity forward, so finite differences see it; the gradient
            // must treat its output as a constant instead.
            GradientCase("stop_gradient alone", covers: ["stop_gradient"],
                         expectations: ["p": .zero(fdToo: false)]) { c in
                c.param("p", [2, 3]).stopGradient()
            },
            GradientCase("stop_gradient in a product", covers: ["stop_gradient"],
                         expectations: ["p": .closedForm({ params, r in
                             zip(params["p"]!.floats, r.floats).map { $0 * $1 }
                         })]) { c in
                let p = c.param("p", [2, 3])
                return p * p.stopGradient()
            },
            GradientCase("stop_gradient beside a live operand", covers: ["stop_gradient"],
                         expectations: ["p": .zero(fdToo: false)]) { c in
                let p = c.param("p", [4]), q = c.param("q", [4])
                return p.stopGradient().exp() + q * p.stopGradient()
            },
        ]
    }

    // MARK: composites

    static var composites: [GradientCase] {
        [
            GradientCase("attention softmax(q kᵀ/2) v", covers: ["matmul", "softmax"]) { c in
                let q = c.param("q", [2, 3, 4]), k = c.param("k", [2, 3, 4]), v = c.param("v", [2, 3, 4])
                return (q.matmul(k, transposeB: true) * 0.5).softmax().matmul(v)
            },
            GradientCase("adaLN modulate", covers: ["layer_norm", "slice"]) { c in
                let x = c.param("x", [2, 3, 4]), mod = c.param("mod", [2, 8], .normal(std: 0.5))
                let shift = mod.slice(axis: 1, 0..<4).reshape([2, 1, 4])
                let scale = mod.slice(axis: 1, 4..<8).reshape([2, 1, 4])
                return x.layerNorm(eps: 1e-6) * (1 + scale) + shift
            },
            GradientCase("MLP gelu(x W1 + b1) W2", covers: ["matmul", "gelu_tanh"]) { c in
                let x = c.param("x", [2, 3, 4])
                let hidden = (x.matmul(c.param("w1", [4, 6])) + c.param("b1", [6])).geluTanh()
                return hidden.matmul(c.param("w2", [6, 4]))
            },
            GradientCase("MSE mean((p − t)²)", covers: ["reduce_mean", "square"]) { c in
                (c.param("p", [2, 2, 3]) - c.input("target", [2, 2, 3])).square().meanAll()
            },
        ]
    }
}

final class OpGradientTests: XCTestCase {
    func testLeaves() { GradientCheckHarness.assertCases(OpGradientCases.leaves) }
    func testUnaryAndAffine() { GradientCheckHarness.assertCases(OpGradientCases.unary) }
    func testBinaryWithBroadcasting() { GradientCheckHarness.assertCases(OpGradientCases.binary) }
    func testMatmulAllTransposesAndBatchBroadcasting() { GradientCheckHarness.assertCases(OpGradientCases.matmul) }
    func testReductions() { GradientCheckHarness.assertCases(OpGradientCases.reductions) }
    func testSoftmaxAndNorms() { GradientCheckHarness.assertCases(OpGradientCases.normalizations) }
    func testLayoutOps() { GradientCheckHarness.assertCases(OpGradientCases.layout) }
    func testGatherAndScatterAdd() { GradientCheckHarness.assertCases(OpGradientCases.indexing) }
    func testCastAndStopGradient() { GradientCheckHarness.assertCases(OpGradientCases.castAndStopGradient) }
    func testComposites() { GradientCheckHarness.assertCases(OpGradientCases.composites) }

    /// Every op family of the op set (see `OpFamilies.family`, an exhaustive switch over `Op`) has
    /// a registered gradient check, and every case's graph really contains what it claims to cover.
    func testEveryOpHasAGradientCheck() throws {
        var covered: [String: Int] = [:]
        for gradientCase in OpGradientCases.all {
            let (_, graph) = try GradientCheckHarness.buildForward(gradientCase)
            let present = Set(graph.nodes.map { OpFamilies.family($0.op) })
            for family in gradientCase.covers {
                XCTAssertTrue(present.contains(family), "\(gradientCase.name) claims \(family) but has no such node")
                covered[family, default: 0] += 1
            }
        }
        let required = OpFamilies.all
        let missing = required.filter { covered[$0] == nil }
        XCTAssertEqual(missing, [], "ops without a gradient check: \(missing)")
        let unknown = Set(covered.keys).subtracting(required)
        XCTAssertEqual(unknown, [], "cases claim families that are not ops")
        print("gradient checks cover \(required.count) op families (\(OpGradientCases.all.count) cases): "
              + required.map { "\($0)×\(covered[$0] ?? 0)" }.joined(separator: " "))
    }

    /// The harness itself: a gradient off by 5 %, or with its sign flipped, is caught.
    func testHarnessCatchesWrongGradients() throws {
        let probe = GradientCase("probe exp·sin", covers: ["exp"]) { c in
            let p = c.param("p", [2, 3])
            return p.exp() * p.sin()
        }
        XCTAssertEqual(try GradientCheckHarness.run(probe).failures, [])
        XCTAssertEqual(try GradientCheckHarness.run(probe, analyticScale: 1.05).failures.count, 6)
        XCTAssertEqual(try GradientCheckHarness.run(probe, analyticScale: -1).failures.count, 6)
        // A false coverage claim is reported.
        let liar = GradientCase("liar", covers: ["softmax"]) { c in c.param("p", [2]).exp() }
        XCTAssertEqual(try GradientCheckHarness.run(liar).failures.count, 1)
    }
}
