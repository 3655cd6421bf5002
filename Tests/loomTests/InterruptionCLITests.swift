import Foundation
import LoomData
import LoomTestSupport
import XCTest

/// Ctrl-C reaching `loom experiment` mid-training: a notice at once, then the step in flight
/// finishes, the checkpoint is written, and the command exits with status 130 and says how to go on.
final class InterruptionCLITests: TemporaryDirectoryTestCase {
    func testCtrlCDuringAStudyStopsWithACheckpoint() throws {
        guard FileManager.default.isExecutableFile(atPath: LoomCLI.binary) else { throw XCTSkip("no debug build of loom") }
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(Dataset.fashionMNISTDefaultRoot)")
        }
        let study = """
        { "out": "\(directory)/study", "classifier": "\(directory)/classifier.safetensors", "classifierSteps": 20,
          "trainLimit": 256, "referenceLimit": 200, "seed": 0, "samples": 10,
          "sampler": { "kind": "euler", "steps": 2, "batch": 10 },
          "training": [ { "name": "vanilla", "hidden": 32, "depth": 2, "heads": 2, "patch": 4, "igLayer": null,
                          "objective": "flow_repa", "lambda": 0.5, "omega": 0, "steps": 1000000, "batch": 8,
                          "lr": 0.001, "warmup": 0, "emaDecay": 0.9 } ],
          "rows": [ { "label": "vanilla", "training": "vanilla", "guidance": "none" } ] }
        """
        let config = directory + "/study.json"
        try study.write(toFile: config, atomically: true, encoding: .utf8)
        let output = directory + "/output.txt"
        let (process, handle) = try LoomCLI.start(["experiment", config, "--threads", "1"], log: output)
        // Training has begun once the run folder's lock exists.
        let lock = directory + "/study/vanilla/train.lock"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: lock), process.isRunning, Date() < deadline { usleep(20_000) }
        XCTAssertTrue(process.isRunning, "the study ended before it could be interrupted")
        usleep(300_000)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        try handle.close()
        let text = try String(contentsOfFile: output, encoding: .utf8)
        XCTAssertEqual(process.terminationReason, .exit, text)
        XCTAssertEqual(process.terminationStatus, 130, text)
        XCTAssertTrue(text.contains("stopping at the next safe point"), text)
        XCTAssertTrue(text.contains("experiment stopped while training 'vanilla', seed 0 (checkpoint saved); rerun to resume"), text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/study/vanilla/checkpoint.safetensors"), text)
    }
}
