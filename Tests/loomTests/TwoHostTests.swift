import Foundation
import LoomData
import LoomTestSupport
import XCTest

/// Data-parallel training across two "hosts": two network namespaces joined by a veth pair
/// (`scripts/two-host-netns.sh`). Needs root, `ip netns` and Open MPI; skipped otherwise.
extension DataParallelTrainingTests {
    func testTwoHostsInNetworkNamespacesReproduceOneProcess() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else {
            throw XCTSkip("needs root and iproute2 for network namespaces")
        }
        guard Self.mpirun != nil else { throw XCTSkip("mpirun not found on PATH (scripts/install-deps.sh)") }
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else { throw XCTSkip("Fashion-MNIST is not installed") }
        // Network namespaces need CAP_NET_ADMIN and a writable /run/netns: probe before relying on them.
        let probe = "loomprobe\(getpid())"
        func ip(_ arguments: [String]) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
        guard try ip(["netns", "add", probe]) == 0 else { throw XCTSkip("network namespaces are not permitted here") }
        _ = try ip(["netns", "del", probe])
        let loom = RepositoryPaths.root.appendingPathComponent(".build/debug/loom").path
        guard FileManager.default.isExecutableFile(atPath: loom) else { throw XCTSkip("no debug build of loom") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [RepositoryPaths.root.appendingPathComponent("scripts/two-host-netns.sh").path, loom]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0, output.contains("Operation not permitted") {
            throw XCTSkip("network namespaces are not permitted here: \(output)")
        }
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("reproduce one process"), output)
    }
}
