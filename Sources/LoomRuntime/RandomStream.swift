import CLoomKernels

/// A counter-based random stream (Philox4x32-10). Values depend only on (seed, stream, position),
/// so a run that resumes at position p draws exactly what an uninterrupted run would.
public struct RandomStream: Equatable, Sendable {
    public let seed: UInt64
    public let stream: UInt64
    /// Next position to draw from.
    public var position: UInt64

    public init(seed: UInt64, stream: UInt64, position: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        self.position = position
    }

    /// A stream id derived from a name (FNV-1a), e.g. one per parameter.
    public static func streamID(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    public mutating func uniform(_ count: Int, low: Float = 0, high: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer {
            loom_random_uniform(seed, stream, position, Int64(count), low, high, $0.baseAddress)
        }
        position += UInt64(count)
        return out
    }

    public mutating func normal(_ count: Int, mean: Float = 0, std: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer {
            loom_random_normal(seed, stream, position, Int64(count), mean, std, $0.baseAddress)
        }
        position += UInt64(count)
        return out
    }
}
