import Foundation
import XCTest

/// Runs the debug build of the `loom` command line, in one process or under `mpirun -np ranks`
/// (skips the test when the build or Open MPI's launcher is missing).
public enum LoomCLI {
    public static var binary: String { RepositoryPaths.root.appendingPathComponent(".build/debug/loom").path }

    /// `mpirun` on PATH, if any.
    public static var mpirun: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `loom arguments` (under `mpirun -np ranks` when ranks > 1), set up but not started.
    static func process(_ arguments: [String], environment: [String: String] = [:], ranks: Int = 1) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("no debug build of loom") }
        let process = Process()
        if ranks == 1 {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        } else {
            guard let mpirun else {
                throw XCTSkip("mpirun not found on PATH: install Open MPI (scripts/install-deps.sh) to run the multi-process tests")
            }
            process.executableURL = URL(fileURLWithPath: mpirun)
            process.arguments = (getuid() == 0 ? ["--allow-run-as-root"] : []) + ["--oversubscribe", "-np", "\(ranks)", binary] + arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        return process
    }

    /// Runs `loom arguments` to the end and returns its status and its stdout and stderr together.
    public static func run(_ arguments: [String], environment: [String: String] = [:], ranks: Int = 1) throws
        -> (status: Int32, signaled: Bool, output: String) {
        let process = try process(arguments, environment: environment, ranks: ranks)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal, String(decoding: data, as: UTF8.self))
    }

    /// Starts `loom arguments` with stdout and stderr written to the file `log`, for tests that
    /// signal or kill it while it runs; the caller waits for it and closes the handle.
    public static func start(_ arguments: [String], ranks: Int = 1, log: String) throws -> (Process, FileHandle) {
        let process = try process(arguments, ranks: ranks)
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return (process, handle)
    }
}
