import Foundation
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomImport
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// Every file of the committed fuzz corpora (`Tests/Fuzz/corpus/<target>/`), including the inputs
/// that once crashed a loader, goes through its loader as in the fuzz targets: none may trap.
final class FuzzCorpusTests: XCTestCase {
    func testEveryCorpusFileLoadsOrFailsCleanly() throws {
        let corpus = CommandLineErrorTests.root.appendingPathComponent("Tests/Fuzz/corpus")
        var files = 0
        let probes = LoaderProbes.all.merging(["FuzzTorchCheckpoint": ImportProbes.torchCheckpoint,
                                               "FuzzVAEWeights": ImportProbes.vaeWeights]) { a, _ in a }
        for (target, probe) in probes.sorted(by: { $0.key < $1.key }) {
            let folder = corpus.appendingPathComponent(target)
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            XCTAssertFalse(names.isEmpty, "\(target) has no corpus")
            for name in names {
                probe(Array(try Data(contentsOf: folder.appendingPathComponent(name))))
                files += 1
            }
        }
        print("fuzz corpus: \(files) files replayed")
    }
}
