import LoomIR
import LoomRuntime

/// The result of the `lower` stage: an optimised graph with a home for every value, before the
/// memory planner places the arena buffers (`PlanLowering.place`).
public struct LoweredGraph: Sendable {
    /// Where one value lives.
    public enum Home: Equatable, Sendable {
        /// At this byte offset of the parameter region (parameters, optimizer state, updates
        /// written in place).
        case parameter(Int)
        /// A view of the parameter region at this offset (concatenated parameters, state slices).
        case parameterView(Int)
        /// The memory of another node (reshape, stop_gradient).
        case alias(Int)
        /// The arena buffer of this root node (itself, or the operand it is written in place over).
        case buffer(Int)
    }

    public var graph: Graph
    /// Indexed like `graph.nodes`.
    public var homes: [Home]
    /// Arena buffers with their live intervals over the launch order.
    public var requests: [BufferRequest]
    /// (node, operand) pairs whose result reuses the operand's buffer.
    public var inPlace: [(node: Int, operand: Int)]
    public var parameterBytes: Int

    /// A readable listing: the buffer table, then every value's home.
    public func dump() -> String {
        var lines = ["// lowered \(graph.name): \(requests.count) arena buffers, \(inPlace.count) in place, parameter region \(parameterBytes) bytes"]
        for r in requests {
            lines.append("buffer %\(r.id): \(r.bytes) bytes, live [\(r.start), \(r.end)]" + (r.pinned ? ", pinned" : ""))
        }
        for (id, home) in homes.enumerated() {
            let text: String
            switch home {
            case .parameter(let offset): text = "parameter region +\(offset)"
            case .parameterView(let offset): text = "view of parameter region +\(offset)"
            case .alias(let node): text = "alias of %\(node)"
            case .buffer(let root): text = root == id ? "buffer %\(root)" : "buffer %\(root) (in place)"
            }
            lines.append("%\(id) \(graph.nodes[id].op.mnemonic): \(text)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
