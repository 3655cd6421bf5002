import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime

/// Each loader that reads files a user may be handed, driven over arbitrary bytes: errors are the
/// expected outcome, a trap is a bug. The fuzz targets (`Tests/Fuzz`, `scripts/fuzz.sh`) and the
/// corpus replay in the test suite call these same functions.
public enum LoaderProbes {
    /// A probe per corpus folder name.
    public static let all: [String: ([UInt8]) -> Void] = [
        "FuzzSafeTensors": safeTensors, "FuzzIDX": idx, "FuzzPlan": plan, "FuzzIRText": irText,
        "FuzzCheckpointMetadata": checkpointMetadata, "FuzzImage": image,
    ]

    /// `loom encode`'s image reading: the bytes as a JPEG and as a PNG file, each decoded to RGB
    /// and prepared at 8 pixels.
    public static func image(_ bytes: [UInt8]) {
        for suffix in ["jpg", "png"] {
            let path = FileManager.default.temporaryDirectory.path + "/loom-probe-\(getpid()).\(suffix)"
            defer { try? FileManager.default.removeItem(atPath: path) }
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes)),
                  let rgb = try? ImageFolder.readRGB(path), rgb.width * rgb.height <= 1 << 20 else { continue }
            _ = ImageResampling.centerCrop(rgb, size: 8)
        }
    }

    /// The safetensors parser, then every tensor it lists.
    public static func safeTensors(_ bytes: [UInt8]) {
        guard let file = try? SafeTensors.read(data: bytes, source: "probe") else { return }
        for (name, tensor) in file.tensors { _ = try? file.tensor(name, expected: tensor.type) }
    }

    /// The IDX parser (at most 64 items), then its values.
    public static func idx(_ bytes: [UInt8]) {
        guard let array = try? IDXReader.parse(bytes, source: "probe", limit: 64) else { return }
        _ = array.floats()
        _ = try? array.integers()
    }

    /// The plan decoder with its layout checks and verifier, as given and resealed with a correct
    /// checksum (so that changes reach the checks behind it).
    public static func plan(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? Plan.decode(text, source: "probe")
        guard let newline = text.firstIndex(of: "\n") else { return }
        let rest = String(text[text.index(after: newline)...])
        _ = try? Plan.decode("\(Plan.magic) \(Plan.formatVersion) \(Plan.checksum(rest))\n" + rest, source: "probe")
    }

    /// The IR parser and verifier, then the printer on what parsed.
    public static func irText(_ bytes: [UInt8]) {
        if let graph = try? IRParser.parse(String(decoding: bytes, as: UTF8.self), source: "probe") {
            _ = IRPrinter.print(graph)
        }
    }

    /// A checkpoint's training metadata: decoded, validated, and a valid one's loss graph
    /// built (its sizes are checked before anything is allocated).
    public static func checkpointMetadata(_ bytes: [UInt8]) {
        guard let config = try? TrainingConfig.from(json: String(decoding: bytes, as: UTF8.self), source: "probe") else { return }
        _ = try? Trainer.lossGraph(config)
    }
}
