import Foundation
import LoomTestSupport
import XCTest

/// The VAE graphs through `loom compile` and `loom profile`, like the transformers: stages dumped,
/// blocks profiled, convolutions counted in MACs.
final class VAEProfileTests: TemporaryDirectoryTestCase {
    func testProfileAndCompileTheVAEGraphs() throws {
        let profile = try LoomCLI.run(["profile", "sd-vae", "--graph", "decoder", "--input-size", "16", "--batch", "1",
                                       "--runs", "1", "--threads", "1"])
        XCTAssertEqual(profile.status, 0, profile.output)
        for block in ["decoder.mid_block", "decoder.up_blocks.0", "decoder.up_blocks.3", "decoder.out", "conv2d"] {
            XCTAssertTrue(profile.output.contains(block), "\(block): \(profile.output)")
        }
        let plan = directory + "/encoder.plan"
        let compile = try LoomCLI.run(["compile", "va-vae", "--graph", "encoder", "--input-size", "32", "--batch", "1",
                                       "--dump-after", "fusion", "-o", plan])
        XCTAssertEqual(compile.status, 0, compile.output)
        XCTAssertTrue(compile.output.contains("conv2d(") && compile.output.contains("stride=2 pad=[0,0,1,1]"), compile.output)
        let run = try LoomCLI.run(["run", plan])
        XCTAssertEqual(run.status, 0, run.output)
        let wrong = try LoomCLI.run(["profile", "sd-vae", "--graph", "train"])
        XCTAssertEqual(wrong.status, 1, wrong.output)
        XCTAssertTrue(wrong.output.contains("--graph decoder or --graph encoder"), wrong.output)
        let train = try LoomCLI.run(["train", "sd-vae", "--steps", "1"])
        XCTAssertEqual(train.status, 1, train.output)
        XCTAssertTrue(train.output.contains("sd-vae is an autoencoder"), train.output)
    }
}
