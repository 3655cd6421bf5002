import LoomIR

/// Gradient contributions collected per node during the reverse sweep. Slices of one value are
/// assembled with a single concat (zeros filling the gaps) instead of padding each slice, which is
/// how the six adaLN chunks and the q/k/v split come back together.
struct AdjointTable {
    private var dense: [Int: [Tensor]] = [:]
    private var slices: [Int: [(axis: Int, start: Int, end: Int, value: Tensor)]] = [:]
    /// Final adjoints of leaf nodes (parameters).
    var finished: [Int: Tensor] = [:]

    mutating func add(_ value: Tensor, to id: Int) { dense[id, default: []].append(value) }

    mutating func addSlice(_ value: Tensor, axis: Int, start: Int, end: Int, to id: Int) {
        slices[id, default: []].append((axis, start, end, value))
    }

    /// The summed adjoint of `id`, or nil if nothing flowed into it.
    mutating func take(_ id: Int, builder b: GraphBuilder, type: TensorType, scope: String) -> Tensor? {
        var terms = dense.removeValue(forKey: id) ?? []
        if let parts = slices.removeValue(forKey: id) {
            b.origin = id
            b.withScope(scope) {
                var byAxis: [Int: [(axis: Int, start: Int, end: Int, value: Tensor)]] = [:]
                for part in parts { byAxis[part.axis, default: []].append(part) }
                for axis in byAxis.keys.sorted() {
                    terms.append(contentsOf: AdjointTable.assemble(byAxis[axis]!, axis: axis, type: type, b))
                }
            }
        }
        guard var total = terms.first else { return nil }
        for term in terms.dropFirst() {
            b.origin = id
            total = b.withScope(scope) { total + term }
        }
        return total
    }

    /// Concatenates non-overlapping slice adjoints along `axis` with zero gaps; overlapping ones
    /// start a new concat. Returns full-size tensors to be summed.
    static func assemble(_ parts: [(axis: Int, start: Int, end: Int, value: Tensor)], axis: Int,
                         type: TensorType, _ b: GraphBuilder) -> [Tensor] {
        var remaining = parts.sorted { $0.start < $1.start }
        var results: [Tensor] = []
        while !remaining.isEmpty {
            var pieces: [Tensor] = []
            var cursor = 0
            var rest: [(axis: Int, start: Int, end: Int, value: Tensor)] = []
            for part in remaining {
                guard part.start >= cursor else {
                    rest.append(part)
                    continue
                }
                if part.start > cursor { pieces.append(zeros(type, axis: axis, count: part.start - cursor, b)) }
                pieces.append(part.value)
                cursor = part.end
            }
            if cursor < type.shape[axis] { pieces.append(zeros(type, axis: axis, count: type.shape[axis] - cursor, b)) }
            results.append(pieces.count == 1 ? pieces[0] : concat(pieces, axis: axis))
            remaining = rest
        }
        return results
    }

    static func zeros(_ type: TensorType, axis: Int, count: Int, _ b: GraphBuilder) -> Tensor {
        var shape = type.shape
        shape[axis] = count
        return b.constant(0, shape: shape)
    }
}
