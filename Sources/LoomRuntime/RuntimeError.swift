/// A failure while loading or running a graph or plan; the message names the tensor, node or file.
public struct RuntimeError: Error, CustomStringConvertible, Equatable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
