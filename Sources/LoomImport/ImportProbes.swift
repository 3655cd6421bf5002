import Foundation

/// The fuzzing entry of the importer (`Tests/Fuzz`, target `FuzzTorchCheckpoint`): any bytes, read as
/// a `.pt` archive and imported whole and under the usual training-checkpoint keys, must end in a
/// value or an error, never a trap.
public enum ImportProbes {
    public static func torchCheckpoint(_ bytes: [UInt8]) {
        guard let checkpoint = try? TorchCheckpoint(data: Data(bytes), source: "probe") else { return }
        _ = checkpoint.report()
        for key in [nil, "ema", "model"] { _ = try? checkpoint.stateDict(key: key) }
    }
}
