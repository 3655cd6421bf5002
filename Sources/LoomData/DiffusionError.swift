import Foundation
import LoomRuntime
/// A failure in a diffusion-level task (objective, sampler, data, golden check); the message names
/// the tensor, file or flag at fault.
public struct DiffusionError: Error, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
