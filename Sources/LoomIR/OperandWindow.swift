/// A box of a larger operand that a `fused_elementwise` kernel reads in place: element `i` of the
/// window (an index into `shape`) is element `offsets + i` of the operand. It replaces `slice`
/// nodes between a tensor and the kernel, so halves of a doubled batch ([2B, C, H, W] → rows
/// `B..<2B`) or a channel range are read with the operand's own strides instead of being copied.
/// The window then broadcasts against the kernel's result like any operand of its shape.
public struct OperandWindow: Equatable, Sendable {
    /// Start of the box along each axis of the operand.
    public var offsets: [Int]
    /// Extent of the box along each axis (same rank as the operand).
    public var shape: [Int]

    public init(offsets: [Int], shape: [Int]) {
        self.offsets = offsets
        self.shape = shape
    }

    /// The whole of an operand of `shape`.
    public static func whole(_ shape: [Int]) -> OperandWindow {
        OperandWindow(offsets: [Int](repeating: 0, count: shape.count), shape: shape)
    }

    /// This window narrowed to `start..<end` along `axis` (a slice of the window).
    public func sliced(axis: Int, start: Int, end: Int) -> OperandWindow {
        var window = self
        window.offsets[axis] += start
        window.shape[axis] = end - start
        return window
    }

    /// True when the box covers all of an operand of `operandShape`.
    public func isWhole(of operandShape: [Int]) -> Bool { self == .whole(operandShape) }

    /// Checks that the box lies inside an operand of `operandShape`.
    public func validate(in operandShape: [Int]) throws {
        guard offsets.count == operandShape.count, shape.count == operandShape.count else {
            throw IRError("window \(text) has rank \(shape.count); its operand is \(describeShape(operandShape))")
        }
        for axis in operandShape.indices where offsets[axis] < 0 || shape[axis] < 0
            || offsets[axis] + shape[axis] > operandShape[axis] {
            throw IRError("window \(text) reaches outside its operand \(describeShape(operandShape)) on axis \(axis)")
        }
    }

    /// Text form: offsets, then the extent, e.g. `2,0,0,0/2,4,8,8`.
    public var text: String {
        offsets.map(String.init).joined(separator: ",") + "/" + shape.map(String.init).joined(separator: ",")
    }

    /// Parses the text form.
    public static func parse(_ text: Substring) throws -> OperandWindow {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        func ints(_ s: Substring) -> [Int]? {
            let values = s.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
            return values.contains(nil) ? nil : values.compactMap { $0 }
        }
        guard parts.count == 2, let offsets = ints(parts[0]), let shape = ints(parts[1]), offsets.count == shape.count else {
            throw IRError("bad operand window '\(text)': expected offsets/extent, e.g. 2,0,0,0/2,4,8,8")
        }
        return OperandWindow(offsets: offsets, shape: shape)
    }
}

extension ElementwiseProgram {
    /// Text form of `windows`: `r<operand>:<window>` joined by `;`, operands in order.
    public var windowsText: String {
        windows.keys.sorted().map { "r\($0):" + windows[$0]!.text }.joined(separator: ";")
    }

    /// Parses `windowsText` for a program of `inputCount` operands.
    public static func parseWindows(_ text: String, inputCount: Int) throws -> [Int: OperandWindow] {
        var windows: [Int: OperandWindow] = [:]
        for piece in text.split(separator: ";") {
            guard let colon = piece.firstIndex(of: ":"), piece.hasPrefix("r"),
                  let operand = Int(piece[piece.index(after: piece.startIndex)..<colon]),
                  operand >= 0, operand < inputCount, windows[operand] == nil else {
                throw IRError("bad operand window '\(piece)': expected r<operand>:offsets/extent for one of \(inputCount) operands, each once")
            }
            windows[operand] = try OperandWindow.parse(piece[piece.index(after: colon)...])
        }
        return windows
    }

    /// Parses a program and its optional `windowsText` (the IR attributes of `fused_elementwise`).
    public static func parse(_ text: String, windows: String?, inputCount: Int) throws -> ElementwiseProgram {
        var program = try parse(text, inputCount: inputCount)
        if let windows { program.windows = try parseWindows(windows, inputCount: inputCount) }
        return program
    }

    /// The shape operand `i` contributes to the kernel: its window's, or its own.
    public func operandShape(_ i: Int, of operand: [Int]) -> [Int] { windows[i]?.shape ?? operand }
}
