import Foundation
import LoomData

/// The DDPM noise schedule: linear β from 1e-4 to 0.02 over 1000 steps, computed in double.
public struct DDPMSchedule: Sendable {
    public let steps: Int
    public let betas: [Double]
    public let alphasCumprod: [Double]

    public init(steps: Int = 1000, betaStart: Double = 1e-4, betaEnd: Double = 0.02) {
        self.steps = steps
        betas = (0..<steps).map { betaStart + (betaEnd - betaStart) * Double($0) / Double(max(steps - 1, 1)) }
        var product = 1.0
        alphasCumprod = betas.map { beta in
            product *= 1 - beta
            return product
        }
    }

    /// Per-sample `[√ᾱ_t, √(1−ᾱ_t)]` for integer steps t, flattened [N, 2] — the `ddpm_coef` input
    /// of DDPM loss graphs. Throws when a step is not an integer in 0..<steps.
    public func noisingCoefficients(_ t: [Float]) throws -> [Float] {
        var out: [Float] = []
        for (i, value) in t.enumerated() {
            let step = Int(exactly: value) ?? -1
            guard step >= 0, step < steps else {
                throw DiffusionError("t[\(i)] = \(value) is not an integer DDPM step in 0..<\(steps)")
            }
            out.append(Float(alphasCumprod[step].squareRoot()))
            out.append(Float((1 - alphasCumprod[step]).squareRoot()))
        }
        return out
    }
}
