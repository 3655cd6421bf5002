/// Element types a Loom value can hold.
public enum DType: String, CaseIterable, Sendable, Equatable {
    case f32, i32, i64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .i64: return 8
        }
    }

    public var isFloat: Bool { self == .f32 }
}

/// A static tensor type: element type plus a row-major shape (rank 0 is a scalar).
public struct TensorType: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(_ dtype: DType, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    public var rank: Int { shape.count }
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { elementCount * dtype.byteSize }

    /// `f32[8,256,384]`, `i64[8]`, `f32[]`.
    public var description: String {
        "\(dtype.rawValue)[\(shape.map(String.init).joined(separator: ","))]"
    }
}

extension DType: Hashable {}

/// Row-major strides of a shape, in elements.
public func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = acc
        acc *= shape[axis]
    }
    return strides
}

/// Formats a shape as `[a, b, c]` for error messages.
public func describeShape(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}
