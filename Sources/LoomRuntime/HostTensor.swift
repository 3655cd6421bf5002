import LoomIR

/// A dense, row-major tensor in host memory. Float tensors keep their data in `floats`,
/// integer tensors (labels, indices) in `ints`; the other array is empty.
public struct HostTensor: Equatable, Sendable {
    public var dtype: DType
    public var shape: [Int]
    public var floats: [Float]
    public var ints: [Int64]

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count,
                     "HostTensor: shape \(describeShape(shape)) holds \(shape.reduce(1, *)) elements, got \(floats.count)")
        self.dtype = .f32
        self.shape = shape
        self.floats = floats
        self.ints = []
    }

    public init(shape: [Int], ints: [Int64], dtype: DType = .i64) {
        precondition(dtype != .f32, "HostTensor: integer data needs an integer dtype")
        precondition(shape.reduce(1, *) == ints.count,
                     "HostTensor: shape \(describeShape(shape)) holds \(shape.reduce(1, *)) elements, got \(ints.count)")
        self.dtype = dtype
        self.shape = shape
        self.floats = []
        self.ints = ints
    }

    /// A zero-filled tensor of the given type.
    public init(zeros type: TensorType) {
        if type.dtype == .f32 {
            self.init(shape: type.shape, floats: [Float](repeating: 0, count: type.elementCount))
        } else {
            self.init(shape: type.shape, ints: [Int64](repeating: 0, count: type.elementCount), dtype: type.dtype)
        }
    }

    public var type: TensorType { TensorType(dtype, shape) }
    public var elementCount: Int { shape.reduce(1, *) }

    /// A scalar (rank-0) float tensor.
    public static func scalar(_ value: Float) -> HostTensor { HostTensor(shape: [], floats: [value]) }
}

extension HostTensor {
    /// Items `start ..< start + count` along the first axis (f32 tensors).
    public func items(_ start: Int, _ count: Int) -> HostTensor {
        let size = shape.dropFirst().reduce(1, *)
        return HostTensor(shape: [count] + shape.dropFirst(), floats: Array(floats[(start * size)..<((start + count) * size)]))
    }
}
