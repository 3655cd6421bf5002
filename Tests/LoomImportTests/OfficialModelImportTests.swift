import Foundation
import LoomData
import LoomDiffusion
import LoomImport
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// `loom import` on state dicts written by `torch.save` from the official PyTorch modules
/// (`scripts/make-official-fixtures.py`: facebookresearch/DiT, willisma/SiT, hustvl/LightningDiT and
/// the Internal Guidance code's SiT and LightningDiT, tiny and randomly initialised). Each imports
/// with the configuration its shapes imply, supplies exactly the golden model's parameters, and
/// gives the official module's forward and losses (GoldenCheck, default tolerance).
final class OfficialModelImportTests: TemporaryDirectoryTestCase {
    static let folder = RepositoryPaths.fixtures.appendingPathComponent("import")

    /// What `InferredConfig` must find in one fixture (all share hidden 24, depth 4, 4 channels,
    /// input 8, 10 classes).
    struct Expected {
        var backbone: String?
        var heads: Int?
        var patch: Int
        var learnSigma: Bool
        var igHead: Bool
        /// Golden tensors the check must have compared.
        var outputs: [String]
    }

    func checkOfficial(_ name: String, _ expected: Expected, file: StaticString = #filePath, line: UInt = #line) throws {
        let weights = try TorchCheckpoint(path: Self.folder.appendingPathComponent("official_\(name).pt").path)
            .stateDict(key: nil)
        let inferred = InferredConfig(tensors: weights)
        XCTAssertEqual(inferred.backbone, expected.backbone, "\(name): backbone", file: file, line: line)
        XCTAssertEqual(inferred.hidden, 24, "\(name): hidden", file: file, line: line)
        XCTAssertEqual(inferred.depth, 4, "\(name): depth", file: file, line: line)
        XCTAssertEqual(inferred.heads, expected.heads, "\(name): heads", file: file, line: line)
        XCTAssertEqual(inferred.patch, expected.patch, "\(name): patch", file: file, line: line)
        XCTAssertEqual(inferred.inChannels, 4, "\(name): channels", file: file, line: line)
        XCTAssertEqual(inferred.inputSize, 8, "\(name): input size", file: file, line: line)
        XCTAssertEqual(inferred.numClasses, 10, "\(name): classes", file: file, line: line)
        XCTAssertEqual(inferred.learnSigma, expected.learnSigma, "\(name): learn_sigma", file: file, line: line)
        XCTAssertEqual(inferred.igHead, expected.igHead, "\(name): IG head", file: file, line: line)

        // Every golden parameter comes from the import, and every imported tensor is one of them.
        let goldenPath = Self.folder.appendingPathComponent("official_\(name).golden.safetensors").path
        let golden = try SafeTensors.read(path: goldenPath)
        let imported = Dictionary(weights, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(imported.count, weights.count, "\(name): a key imported twice", file: file, line: line)
        var entries: [(String, HostTensor)] = []
        var used = Set<String>()
        for entry in golden.order {
            let value = try XCTUnwrap(golden.tensors[entry])
            guard let key = Naming.strip(Naming.goldenParameterPrefix, from: entry) else {
                entries.append((entry, value))
                continue
            }
            guard let mine = imported[key] else {
                XCTFail("\(name): golden parameter \(key) is not in the imported state dict", file: file, line: line)
                continue
            }
            XCTAssertEqual(mine, value, "\(name): \(key)", file: file, line: line)
            entries.append((entry, mine))
            used.insert(key)
        }
        XCTAssertEqual(Set(imported.keys).subtracting(used).sorted(), [],
                       "\(name): imported tensors the golden model does not use", file: file, line: line)

        let path = directory + "/official_\(name).safetensors"
        try SafeTensors.write(entries, metadata: golden.metadata, to: path)
        let check = try GoldenCheck(path: path, threads: 1)
        for row in check.rows { print("official_\(name): \(row.name) \(row.error)") }
        XCTAssertTrue(check.passed, "\(name): \(check.rows.filter { !$0.passed }.map { "\($0.name) \($0.error)" }) " +
                      "missing \(check.missing)", file: file, line: line)
        let compared = Set(check.rows.map(\.name))
        for output in expected.outputs {
            XCTAssertTrue(compared.contains(output), "\(name): \(output) was not compared", file: file, line: line)
        }
    }

    /// facebookresearch/DiT: learn_sigma (8 output channels), DDPM noising from its diffusion code.
    func testOfficialDiT() throws {
        try checkOfficial("dit", Expected(backbone: nil, heads: nil, patch: 2, learnSigma: true, igHead: false,
                                          outputs: ["xt", "out_final", "loss"]))
    }

    /// willisma/SiT with learn_sigma: Loom computes all 8 channels, the official forward returns the
    /// first 4 (the golden keeps the full final layer output); the loss uses the first 4.
    func testOfficialSiT() throws {
        try checkOfficial("sit", Expected(backbone: nil, heads: nil, patch: 2, learnSigma: true, igHead: false,
                                          outputs: ["xt", "target", "out_final", "loss_final", "loss"]))
    }

    /// The Internal Guidance code's SiT: `final_layer_xr` after block 2 of 4, its IGLoss (REPA convention).
    func testOfficialSiTWithIGHead() throws {
        try checkOfficial("sit_ig", Expected(backbone: nil, heads: nil, patch: 2, learnSigma: false, igHead: true,
                                             outputs: ["xt", "target", "out_final", "out_inter", "loss_final",
                                                       "loss_inter", "loss"]))
    }

    /// hustvl/LightningDiT: SwiGLU, RMSNorm, 2-D RoPE (its buffers checked against Loom's tables),
    /// the cosine loss.
    func testOfficialLightningDiT() throws {
        try checkOfficial("lightningdit", Expected(backbone: "lightningdit", heads: 3, patch: 1, learnSigma: false,
                                                   igHead: false,
                                                   outputs: ["feat_rope.freqs_cos", "feat_rope.freqs_sin", "xt",
                                                             "target", "out_final", "loss_final", "loss"]))
    }

    /// The Internal Guidance code's LightningDiT: `final_layer_xr` (with its own RMSNorm) after block 1.
    func testOfficialLightningDiTWithIGHead() throws {
        try checkOfficial("lightningdit_ig", Expected(backbone: "lightningdit", heads: 3, patch: 1, learnSigma: false,
                                                      igHead: true,
                                                      outputs: ["xt", "target", "out_final", "out_inter", "loss_final",
                                                                "loss_inter", "loss"]))
    }
}
