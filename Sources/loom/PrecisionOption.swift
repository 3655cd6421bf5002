import ArgumentParser
import LoomIR

/// `--precision fp32|bf16` on every command that compiles a plan.
extension PrecisionPolicy: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.lowercased())
    }

    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
