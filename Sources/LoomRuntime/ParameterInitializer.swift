import Foundation
import LoomIR

/// Materialises a graph's parameters and buffers from their `Initializer`s. Random values come
/// from a per-parameter stream keyed by the parameter's name, so they do not depend on graph order.
public enum ParameterInitializer {
    /// Values for every parameter and buffer of `graph`, keyed by state-dict name.
    public static func initialize(_ graph: Graph, seed: UInt64) -> [String: HostTensor] {
        var values: [String: HostTensor] = [:]
        for node in graph.parameterNodes {
            guard case .parameter(let name, let initializer, _) = node.op else { continue }
            values[name] = HostTensor(shape: node.type.shape,
                                      floats: generate(initializer, shape: node.type.shape, name: name, seed: seed))
        }
        return values
    }

    /// The values of one initializer for a tensor of `shape`.
    public static func generate(_ initializer: Initializer, shape: [Int], name: String, seed: UInt64) -> [Float] {
        let count = shape.reduce(1, *)
        var stream = RandomStream(seed: seed, stream: RandomStream.streamID(name))
        switch initializer {
        case .zeros: return [Float](repeating: 0, count: count)
        case .ones: return [Float](repeating: 1, count: count)
        case .normal(let std): return stream.normal(count, std: std)
        case .xavierUniform(let fanIn, let fanOut):
            let bound = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
            return stream.uniform(count, low: -bound, high: bound)
        case .sinCos2D(let gh, let gw):
            return sinCos2DTable(gridH: gh, gridW: gw, dim: shape.last!)
        case .ropeCos(let gh, let gw):
            return ropeAngles(gridH: gh, gridW: gw, headDim: shape.last!).map { Float(cos($0)) }
        case .ropeSin(let gh, let gw):
            return ropeAngles(gridH: gh, gridW: gw, headDim: shape.last!).map { Float(sin($0)) }
        }
    }

    /// 2-D sin-cos position table, [T, D] flattened: the first D/2 dims encode the column, the last
    /// D/2 the row; each half is `[sin(pos·ω_k)] ++ [cos(pos·ω_k)]`, `ω_k = 10000^(−k/(D/4))`.
    public static func sinCos2DTable(gridH: Int, gridW: Int, dim: Int) -> [Float] {
        let quarter = dim / 4
        var table = [Float](repeating: 0, count: gridH * gridW * dim)
        for row in 0..<gridH {
            for col in 0..<gridW {
                let base = (row * gridW + col) * dim
                for (half, pos) in [(0, Double(col)), (1, Double(row))] {
                    for k in 0..<quarter {
                        let omega = 1.0 / pow(10000.0, Double(k) / Double(quarter))
                        table[base + half * 2 * quarter + k] = Float(sin(pos * omega))
                        table[base + half * 2 * quarter + quarter + k] = Float(cos(pos * omega))
                    }
                }
            }
        }
        return table
    }

    /// RoPE angles, [T, head_dim] flattened: per-axis dim d = head_dim/2, `θ_j = 10000^(−2j/d)`,
    /// `pos·θ_j` each repeated twice; the first d dims use the row, the last d the column.
    public static func ropeAngles(gridH: Int, gridW: Int, headDim: Int) -> [Double] {
        let d = headDim / 2
        var angles = [Double](repeating: 0, count: gridH * gridW * headDim)
        for row in 0..<gridH {
            for col in 0..<gridW {
                let base = (row * gridW + col) * headDim
                for (half, pos) in [(0, Double(row)), (1, Double(col))] {
                    for j in 0..<(d / 2) {
                        let theta = 1.0 / pow(10000.0, Double(2 * j) / Double(d))
                        angles[base + half * d + 2 * j] = pos * theta
                        angles[base + half * d + 2 * j + 1] = pos * theta
                    }
                }
            }
        }
        return angles
    }
}
