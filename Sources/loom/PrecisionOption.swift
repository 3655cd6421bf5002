import ArgumentParser
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomIR
import LoomSampling
import LoomTraining

/// `--precision fp32|bf16` on every command that compiles a plan.
extension PrecisionPolicy: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.lowercased())
    }

    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
