import LoomRuntime

/// Random tensors for kernel tests.
public enum TestTensors {
    /// Uniform values in [low, high], fixed by `seed`.
    public static func random(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> HostTensor {
        var stream = RandomStream(seed: seed, stream: RandomStream.streamID("fused-kernel-tests"))
        return HostTensor(shape: shape, floats: stream.uniform(shape.reduce(1, *), low: low, high: high))
    }
}
