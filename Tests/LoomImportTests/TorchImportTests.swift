import Foundation
import LoomData
import LoomDiffusion
import LoomImport
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// `loom import` on checkpoints written by `torch.save` (`scripts/make-import-fixtures.py`): values
/// equal PyTorch's own float32/int64 copies, a nested training checkpoint imports its EMA and gives
/// the golden forward, and hostile pickles are refused without anything being executed.
final class TorchImportTests: TemporaryDirectoryTestCase {
    static let folder = RepositoryPaths.fixtures.appendingPathComponent("import")
    /// The file the hostile pickles would create if they ran (see the fixture script).
    static let marker = "/tmp/loom-import-fixture-executed"

    func fixture(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }

    func assertMatchesExpected(_ name: String) throws {
        let imported = try TorchCheckpoint(path: fixture(name + ".pt")).stateDict(key: nil)
        let expected = try SafeTensors.read(path: fixture(name + ".expected.safetensors"))
        XCTAssertEqual(imported.map(\.0), expected.order, "\(name): keys in file order")
        for (key, tensor) in imported {
            let reference = try XCTUnwrap(expected.tensors[key], key)
            XCTAssertEqual(tensor.shape, reference.shape, "\(name): \(key)")
            if reference.dtype == .f32 {
                XCTAssertEqual(tensor.floats.map(\.bitPattern), reference.floats.map(\.bitPattern), "\(name): \(key) bit for bit")
            } else {
                XCTAssertEqual(tensor.ints, reference.ints, "\(name): \(key)")
            }
        }
    }

    /// Strided views (a transpose, a row slice sharing a storage), a Parameter, int64 and a scalar.
    func testStateDictMatchesPyTorch() throws {
        try assertMatchesExpected("state_dict")
    }

    /// float16 (subnormals, 65504, −0) and bfloat16 exactly; float64 rounded to float32.
    func testLowPrecisionStoragesMatchPyTorch() throws {
        try assertMatchesExpected("low_precision")
    }

    /// A nested training checkpoint (model, ema, optimizer state, argparse.Namespace): `--key ema`
    /// imports; the imported weights run the golden forward of the model they came from.
    func testTrainingCheckpointEMAGivesTheGoldenForward() throws {
        let checkpoint = try TorchCheckpoint(path: fixture("sit_ig_tiny_training.pt"))
        XCTAssertEqual(checkpoint.placeholders, ["argparse.Namespace"])
        XCTAssertThrowsError(try checkpoint.stateDict(key: nil)) { error in
            XCTAssertTrue("\(error)".contains("--key") && "\(error)".contains("ema"), "\(error)")
        }
        XCTAssertThrowsError(try checkpoint.stateDict(key: "args")) { error in
            XCTAssertTrue("\(error)".contains("argparse.Namespace"), "\(error)")
        }
        let weights = try checkpoint.stateDict(key: "ema")
        let inferred = InferredConfig(tensors: weights)
        XCTAssertEqual(inferred.hidden, 64)
        XCTAssertEqual(inferred.depth, 4)
        XCTAssertEqual(inferred.patch, 2)
        XCTAssertEqual(inferred.inChannels, 4)
        XCTAssertEqual(inferred.inputSize, 8)
        XCTAssertEqual(inferred.numClasses, 10)
        XCTAssertEqual(inferred.learnSigma, false)
        XCTAssertTrue(inferred.igHead)

        // The golden file with its parameters replaced by the imported ones must still pass.
        let golden = try SafeTensors.read(path: RepositoryPaths.fixtures.appendingPathComponent("sit_ig_tiny.safetensors").path)
        let imported = Dictionary(weights, uniquingKeysWith: { a, _ in a })
        var entries: [(String, HostTensor)] = []
        var replaced = 0
        for name in golden.order {
            if let key = Naming.strip(Naming.goldenParameterPrefix, from: name), let value = imported[key] {
                XCTAssertEqual(value, golden.tensors[name], key)
                entries.append((name, value))
                replaced += 1
            } else {
                entries.append((name, golden.tensors[name]!))
            }
        }
        XCTAssertEqual(replaced, weights.count, "every imported tensor is a parameter of the golden model")
        let path = directory + "/imported_golden.safetensors"
        try SafeTensors.write(entries, metadata: golden.metadata, to: path)
        let check = try GoldenCheck(path: path, threads: 1)
        XCTAssertTrue(check.passed, "\(check)")
    }

    func testHostilePicklesAreRefusedAndNothingRuns() throws {
        try? FileManager.default.removeItem(atPath: Self.marker)
        let refusals: [(String, String?, String)] = [
            ("hostile_global.pt", nil, "posix.system"),
            ("hostile_reduce.pt", nil, "posix.system"),
            ("hostile_opcode.pt", nil, "INST"),
            ("hostile_outside_key.pt", "args", "posix.system"),
        ]
        for (file, key, fragment) in refusals {
            XCTAssertThrowsError(try TorchCheckpoint(path: fixture(file)).stateDict(key: key)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(file): \(error)")
            }
        }
        // The payload outside the imported entry stays an inert name.
        let model = try TorchCheckpoint(path: fixture("hostile_outside_key.pt")).stateDict(key: "model")
        XCTAssertEqual(model.map(\.0), ["w"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.marker), "a payload ran")
    }

    /// A directory offset past the file (here 2⁶³ + …, which would trap the zip reader) is refused
    /// before the archive is read.
    func testOutOfRangeZipOffsetsAreRefused() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("state_dict.pt"))))
        let signature: [UInt8] = [0x50, 0x4B, 0x06, 0x06]
        let record = try XCTUnwrap((0...(bytes.count - 56)).last { Array(bytes[$0..<($0 + 4)]) == signature })
        for i in 0..<8 { bytes[record + 48 + i] = i < 4 ? 0 : 0xFF }       // offset of the directory
        let path = directory + "/offset.pt"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TorchCheckpoint(path: path)) { error in
            XCTAssertTrue("\(error)".contains("damaged zip archive") && "\(error)".contains(path), "\(error)")
        }
    }

    /// Cut and damaged files end in an error naming the file, never a trap.
    func testDamagedFilesFailCleanly() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixture("state_dict.pt")))
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 23)) {
            let path = directory + "/cut\(cut).pt"
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try TorchCheckpoint(path: path).stateDict(key: nil), "cut at \(cut)") { error in
                XCTAssertTrue("\(error)".contains(path), "\(error)")
            }
        }
        var flipped = bytes
        for offset in stride(from: 40, to: bytes.count - 40, by: 97) {
            flipped[offset] ^= 0x5A
            let path = directory + "/flip\(offset).pt"
            try flipped.write(to: URL(fileURLWithPath: path))
            do { _ = try TorchCheckpoint(path: path).stateDict(key: nil) } catch {}
            flipped[offset] ^= 0x5A
        }
    }
}
