import CLoomKernels

/// Ctrl-C / SIGTERM as a flag that long jobs poll between steps (so they can save their state);
/// a second signal exits at once.
public enum Interruption {
    public static func install() { loom_install_interrupt_handler() }
    public static var requested: Bool { loom_interrupted() != 0 }
    /// Raises the flag as a signal would (tests, embedding programs).
    public static func request() { loom_request_interrupt() }
    public static func clear() { loom_clear_interrupt() }

    /// A long job stopped at a safe point because the flag was raised; the message says what was
    /// kept and how to continue.
    public struct Stopped: Error, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
