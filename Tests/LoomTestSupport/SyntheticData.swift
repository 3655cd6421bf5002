import Foundation
import LoomData
import LoomGraphs
import LoomRuntime

/// Small deterministic data sets for tests that need no data on disk.
public enum SyntheticData {
    /// `count` images in [-1, 1] (smooth patterns plus noise) with labels cycling over the classes.
    public static func dataset(_ model: ModelConfig, count: Int = 8, seed: UInt64 = 7) throws -> Dataset {
        let (c, s) = (model.inChannels, model.inputSize)
        var stream = RandomStream(seed: seed, stream: RandomStream.streamID("compiled-training-data"))
        let noise = stream.uniform(count * c * s * s, low: -0.3, high: 0.3)
        var pixels: [Float] = []
        pixels.reserveCapacity(noise.count)
        for n in 0..<count {
            for ch in 0..<c {
                for i in 0..<s {
                    for j in 0..<s {
                        let k = ((n * c + ch) * s + i) * s + j
                        let wave = Float(Foundation.sin(Double(i * (n % 3 + 1) + j + ch)))
                        pixels.append(max(-1, min(1, 0.7 * wave + noise[k])))
                    }
                }
            }
        }
        let labels = (0..<count).map { Int64($0 % model.numClasses) }
        return try Dataset(images: HostTensor(shape: [count, c, s, s], floats: pixels), labels: labels,
                           numClasses: model.numClasses, source: "synthetic")
    }
}
