import Foundation
import LoomData
import LoomDiffusion
import LoomTestSupport

// Building blocks of the naive reference: plain Double arithmetic and loops, written from
// Docs/conventions.md alone (no Loom graph or kernel code is used), so it can cross-check Loom.

/// The naive reference's generator: SplitMix64 (Box–Muller for normals), identical on every platform.
typealias NaiveRNG = SplitMix64

extension SplitMix64 {
    /// The naive reference's seeding.
    init(seed: UInt64) { self.init(state: seed ^ 0x5DEE_CE66_D1B5_4A32) }
}

/// Naive tensor operations on `[Double]` vectors (row-major where a matrix is meant).
enum Naive {
    /// `W x + b` for `W` of shape [outFeatures, x.count] (PyTorch `Linear` layout).
    static func linear(_ x: [Double], _ weight: [Double], _ bias: [Double]?, outFeatures: Int) -> [Double] {
        let inFeatures = x.count
        precondition(weight.count == outFeatures * inFeatures, "linear: weight has \(weight.count) values, "
                     + "expected \(outFeatures)×\(inFeatures)")
        var y = [Double](repeating: 0, count: outFeatures)
        for o in 0..<outFeatures {
            var sum = bias?[o] ?? 0
            let row = o * inFeatures
            for i in 0..<inFeatures { sum += weight[row + i] * x[i] }
            y[o] = sum
        }
        return y
    }

    static func silu(_ x: Double) -> Double { x / (1 + exp(-x)) }

    static func silu(_ x: [Double]) -> [Double] { x.map { silu($0) } }

    /// GELU, tanh approximation (PyTorch `approximate="tanh"`).
    static func geluTanh(_ x: Double) -> Double {
        0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    }

    /// LayerNorm over the whole vector, no affine, biased variance.
    static func layerNorm(_ x: [Double], eps: Double = 1e-6) -> [Double] {
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        var variance = 0.0
        for v in x { variance += (v - mean) * (v - mean) }
        variance /= n
        let inv = 1 / (variance + eps).squareRoot()
        return x.map { ($0 - mean) * inv }
    }

    /// RMSNorm with a learnable weight: `x · rsqrt(mean(x²) + eps) · w`.
    static func rmsNorm(_ x: [Double], weight: [Double], eps: Double = 1e-6) -> [Double] {
        var meanSquare = 0.0
        for v in x { meanSquare += v * v }
        meanSquare /= Double(x.count)
        let inv = 1 / (meanSquare + eps).squareRoot()
        var y = x
        for i in 0..<x.count { y[i] = x[i] * inv * weight[i] }
        return y
    }

    /// `h · (1 + scale) + shift`.
    static func modulate(_ h: [Double], shift: [Double], scale: [Double]) -> [Double] {
        var y = h
        for i in 0..<h.count { y[i] = h[i] * (1 + scale[i]) + shift[i] }
        return y
    }

    /// Splits `x` into `n` equal consecutive chunks (PyTorch `chunk(n, dim=-1)`).
    static func chunk(_ x: [Double], _ n: Int) -> [[Double]] {
        let size = x.count / n
        precondition(size * n == x.count)
        return (0..<n).map { Array(x[($0 * size)..<(($0 + 1) * size)]) }
    }

    static func softmax(_ x: [Double]) -> [Double] {
        let m = x.max() ?? 0
        let e = x.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// Docs/conventions.md §2: 128 frequencies `f_k = exp(−ln(10000)·k/128)`, `[cos(t f_k)] ++ [sin(t f_k)]`.
    static func timestepEmbedding(_ t: Double) -> [Double] {
        let half = 128
        var v = [Double](repeating: 0, count: 2 * half)
        for k in 0..<half {
            let f = exp(-log(10000.0) * Double(k) / Double(half))
            v[k] = cos(t * f)
            v[half + k] = sin(t * f)
        }
        return v
    }

    /// Docs/conventions.md §2: fixed 2-D sin-cos table [grid², hidden] (flat); the first hidden/2 dims encode
    /// the column, the last hidden/2 the row, each half `[sin(pos ω_k)] ++ [cos(pos ω_k)]`,
    /// `ω_k = 10000^(−k/(hidden/4))`.
    static func posEmbed(hidden: Int, grid: Int) -> [Double] {
        precondition(hidden % 4 == 0, "pos_embed needs hidden divisible by 4")
        let quarter = hidden / 4
        var table = [Double](repeating: 0, count: grid * grid * hidden)
        for row in 0..<grid {
            for col in 0..<grid {
                let base = (row * grid + col) * hidden
                for k in 0..<quarter {
                    let omega = 1 / pow(10000.0, Double(k) / Double(quarter))
                    table[base + k] = sin(Double(col) * omega)
                    table[base + quarter + k] = cos(Double(col) * omega)
                    table[base + 2 * quarter + k] = sin(Double(row) * omega)
                    table[base + 3 * quarter + k] = cos(Double(row) * omega)
                }
            }
        }
        return table
    }

    /// Docs/conventions.md §4: 2-D RoPE tables [grid², headDim] (flat). Per-axis dim d = headDim/2,
    /// `θ_j = 10000^(−2j/d)`, angles `pos·θ_j` repeated twice consecutively; the first d dims
    /// use the row, the last d the column.
    static func ropeTables(headDim: Int, grid: Int) -> (cos: [Double], sin: [Double]) {
        precondition(headDim % 4 == 0, "2-D RoPE needs head_dim divisible by 4")
        let d = headDim / 2
        var cosTable = [Double](repeating: 0, count: grid * grid * headDim)
        var sinTable = cosTable
        for row in 0..<grid {
            for col in 0..<grid {
                let base = (row * grid + col) * headDim
                for e in 0..<headDim {
                    let axisPosition = e < d ? Double(row) : Double(col)
                    let j = (e % d) / 2
                    let theta = pow(10000.0, -2 * Double(j) / Double(d))
                    cosTable[base + e] = cos(axisPosition * theta)
                    sinTable[base + e] = sin(axisPosition * theta)
                }
            }
        }
        return (cosTable, sinTable)
    }

    /// Applies RoPE to one head vector: `x·cos + rot(x)·sin`, rot: (a, b) → (−b, a) per adjacent pair.
    static func rope(_ x: [Double], cos c: ArraySlice<Double>, sin s: ArraySlice<Double>) -> [Double] {
        var y = x
        let c = Array(c), s = Array(s)
        for pair in stride(from: 0, to: x.count, by: 2) {
            let a = x[pair], b = x[pair + 1]
            y[pair] = a * c[pair] - b * s[pair]
            y[pair + 1] = b * c[pair + 1] + a * s[pair + 1]
        }
        return y
    }

    /// DDPM (Docs/conventions.md §2/§5): linear β from 1e-4 to 0.02 over 1000 steps, ᾱ_t = Π_{s≤t}(1 − β_s).
    static func alphaBar(step: Int) -> Double {
        var product = 1.0
        for s in 0...step {
            let beta = 1e-4 + (0.02 - 1e-4) * Double(s) / 999
            product *= 1 - beta
        }
        return product
    }

    /// The agreement metric of Docs/conventions.md §5: `max|a − b| / max|reference|` (infinite on a size
    /// mismatch or a non-finite value).
    static func relativeError(_ a: [Double], _ reference: [Double]) -> Double {
        guard a.count == reference.count else { return .infinity }
        var diff = 0.0, scale = 0.0
        for (x, y) in zip(a, reference) {
            guard x.isFinite, y.isFinite else { return .infinity }
            diff = max(diff, abs(x - y))
            scale = max(scale, abs(y))
        }
        return scale > 0 ? diff / scale : diff
    }
}
