/// Limits on sizes that come from any input (flags, metadata, plan and IR text), checked with
/// overflow-checked arithmetic so that a hostile value is an error naming it, never a trap.
public enum SizeLimits {
    /// Most elements one tensor may hold: 2^40 (4 TiB of f32), far beyond any machine Loom runs on
    /// and far below where byte counts and offsets overflow.
    public static let maxElements = 1 << 40

    /// The product of `dimensions`, or nil when it overflows or exceeds `maxElements` (or a
    /// dimension is negative).
    public static func elementCount(_ dimensions: [Int]) -> Int? {
        var total = 1
        for d in dimensions {
            guard d >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maxElements else { return nil }
            total = product
        }
        return total
    }

    /// Throws unless `type` is within the limits, naming it and `what` holds it.
    public static func check(_ type: TensorType, _ what: String) throws {
        if type.shape.contains(where: { $0 < 0 }) { throw IRError("\(what): negative dimension in \(type)") }
        guard elementCount(type.shape) != nil else {
            throw IRError("\(what): \(type) has more than 2^40 elements (or its size overflows); Loom's limit per tensor is 2^40")
        }
    }

    /// `a + b`, or nil on overflow.
    public static func add(_ a: Int, _ b: Int) -> Int? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }
}

/// "%3: f32[2,4], %7: f32[4]" for error messages, cut after `limit` operands ("… and N more"), so a
/// node with millions of operands gives a short message.
public func describeOperands(_ ids: [Int], _ types: [TensorType], limit: Int = 8) -> String {
    let shown = zip(ids, types).prefix(limit).map { "%\($0): \($1)" }.joined(separator: ", ")
    return ids.count > limit ? shown + ", … and \(ids.count - limit) more" : shown
}
