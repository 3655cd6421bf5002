import Foundation

/// The fuzzing entry of the importer (`Tests/Fuzz`, target `FuzzTorchCheckpoint`): any bytes, written
/// to a temporary `.pt` file and imported whole and under the usual training-checkpoint keys, must end
/// in a value or an error, never a trap. (Through a file, as `loom import` reads: ZIPFoundation's
/// memory-backed reader traps on some damaged archives.)
public enum ImportProbes {
    public static func torchCheckpoint(_ bytes: [UInt8]) {
        let path = FileManager.default.temporaryDirectory.path + "/loom-probe-\(getpid()).pt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return }
        guard let checkpoint = try? TorchCheckpoint(path: path) else { return }
        _ = checkpoint.report()
        for key in [nil, "ema", "model"] { _ = try? checkpoint.stateDict(key: key) }
    }
}
