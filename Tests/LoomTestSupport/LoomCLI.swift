import Foundation
import XCTest

/// Runs the debug build of the `loom` command line (skips the test when it is not built).
public enum LoomCLI {
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, signaled: Bool, output: String) {
        let binary = RepositoryPaths.root.appendingPathComponent(".build/debug/loom")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no debug build of loom") }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal, String(decoding: data, as: UTF8.self))
    }
}
