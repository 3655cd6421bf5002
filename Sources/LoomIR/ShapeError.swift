/// A malformed graph or an op applied to operands of the wrong shape or type.
public struct IRError: Error, CustomStringConvertible, Equatable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
