/// A symbolic tensor: a handle on a node of the graph being traced. Calling ops on it records nodes.
public struct Tensor {
    public let id: Int
    public let type: TensorType
    public unowned let builder: GraphBuilder

    public init(id: Int, type: TensorType, builder: GraphBuilder) {
        self.id = id
        self.type = type
        self.builder = builder
    }

    public var shape: [Int] { type.shape }
    public var rank: Int { type.rank }

    private func op(_ op: Op, _ others: Tensor...) -> Tensor { builder.append(op, [self] + others) }

    // MARK: elementwise
    public func unary(_ f: UnaryFunction) -> Tensor { op(.unary(f)) }
    public func neg() -> Tensor { unary(.neg) }
    public func exp() -> Tensor { unary(.exp) }
    public func log() -> Tensor { unary(.log) }
    public func sqrt() -> Tensor { unary(.sqrt) }
    public func rsqrt() -> Tensor { unary(.rsqrt) }
    public func tanh() -> Tensor { unary(.tanh) }
    public func sin() -> Tensor { unary(.sin) }
    public func cos() -> Tensor { unary(.cos) }
    public func silu() -> Tensor { unary(.silu) }
    public func geluTanh() -> Tensor { unary(.geluTanh) }
    public func sigmoid() -> Tensor { unary(.sigmoid) }
    public func square() -> Tensor { unary(.square) }
    public func abs() -> Tensor { unary(.abs) }
    public func affine(scale: Float, shift: Float) -> Tensor { op(.affine(scale: scale, shift: shift)) }
    public func maximum(_ other: Tensor) -> Tensor { op(.binary(.max), other) }
    public func minimum(_ other: Tensor) -> Tensor { op(.binary(.min), other) }

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.op(.binary(.add), b) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.op(.binary(.sub), b) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.op(.binary(.mul), b) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { a.op(.binary(.div), b) }
    public static func + (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: b) }
    public static func - (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: -b) }
    public static func * (a: Tensor, b: Float) -> Tensor { a.affine(scale: b, shift: 0) }
    public static func * (a: Float, b: Tensor) -> Tensor { b.affine(scale: a, shift: 0) }
    public static func + (a: Float, b: Tensor) -> Tensor { b.affine(scale: 1, shift: a) }
    public static func - (a: Float, b: Tensor) -> Tensor { b.affine(scale: -1, shift: a) }
    public static prefix func - (a: Tensor) -> Tensor { a.neg() }

    // MARK: linear algebra and reductions
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        op(.matmul(transposeA: transposeA, transposeB: transposeB), other)
    }
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor { reduce(.sum, axes: axes, keepDims: keepDims) }
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor { reduce(.mean, axes: axes, keepDims: keepDims) }
    public func max(axes: [Int], keepDims: Bool = false) -> Tensor { reduce(.max, axes: axes, keepDims: keepDims) }
    /// Sum / mean of every element, as a scalar.
    public func sumAll() -> Tensor { sum(axes: Array(0..<rank)) }
    public func meanAll() -> Tensor { mean(axes: Array(0..<rank)) }
    public func reduce(_ f: ReduceFunction, axes: [Int], keepDims: Bool = false) -> Tensor {
        let norm = TypeInference.normalizeAxes(axes, rank: rank) ?? axes
        return op(.reduce(f, axes: norm, keepDims: keepDims))
    }
    public func softmax() -> Tensor { op(.softmax) }
    public func layerNorm(eps: Float) -> Tensor { op(.layerNorm(eps: eps)) }
    public func rmsNorm(eps: Float) -> Tensor { op(.rmsNorm(eps: eps)) }

    // MARK: layout
    public func reshape(_ shape: [Int]) -> Tensor { op(.reshape(shape: shape)) }
    public func permute(_ perm: [Int]) -> Tensor { op(.permute(perm: perm)) }
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = axis < 0 ? axis + rank : axis
        return op(.slice(axis: a, start: range.lowerBound, end: range.upperBound))
    }
    /// Splits `axis` into `count` equal chunks (like `torch.chunk`).
    public func chunk(_ count: Int, axis: Int) -> [Tensor] {
        let a = axis < 0 ? axis + rank : axis
        let size = shape[a] / count
        return (0..<count).map { slice(axis: a, ($0 * size)..<(($0 + 1) * size)) }
    }
    public func broadcast(to shape: [Int]) -> Tensor { op(.broadcast(shape: shape)) }
    public func patchify(_ patch: Int) -> Tensor { op(.patchify(patch: patch)) }
    public func unpatchify(_ patch: Int, gridH: Int, gridW: Int) -> Tensor {
        op(.unpatchify(patch: patch, gridH: gridH, gridW: gridW))
    }
    public func rotatePairs() -> Tensor { op(.rotatePairs) }
    /// `[N, C, H, W]` convolved by `weight [O, C, kh, kw]` plus `bias [O]`; padding (top, left, bottom, right).
    public func conv2d(_ weight: Tensor, _ bias: Tensor, stride: Int = 1, padding: [Int]) -> Tensor {
        builder.append(.conv2d(stride: stride, padding: padding), [self, weight, bias])
    }
    public func cast(_ dtype: DType) -> Tensor { op(.cast(to: dtype)) }
    public func stopGradient() -> Tensor { op(.stopGradient) }
    /// Rows of this `[V, D]` table picked by integer `indices`.
    public func gather(_ indices: Tensor) -> Tensor { op(.gather, indices) }
    /// Sums these `[..., D]` rows into a zero `[rows, D]` table at integer `indices`.
    public func scatterAdd(_ indices: Tensor, rows: Int) -> Tensor { op(.scatterAdd(rows: rows), indices) }
}

/// Concatenates tensors along `axis`.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat needs at least one tensor")
    let a = axis < 0 ? axis + tensors[0].rank : axis
    return tensors[0].builder.append(.concat(axis: a), tensors)
}
