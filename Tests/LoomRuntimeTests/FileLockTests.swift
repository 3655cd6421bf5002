import Foundation
import LoomRuntime
import XCTest

/// `FileLock`: one holder at a time, released by `release()` and by deinit, and a clear error for
/// a lock file that cannot be created.
final class FileLockTests: XCTestCase {
    func testOneHolderAtATime() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-lock-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try XCTUnwrap(try FileLock.tryAcquire(path))
        XCTAssertNil(try FileLock.tryAcquire(path), "a second holder while the first holds it")
        first.release()
        first.release()  // twice: nothing
        var second: FileLock? = try XCTUnwrap(try FileLock.tryAcquire(path))
        XCTAssertNil(try FileLock.tryAcquire(path))
        second = nil  // deinit releases
        XCTAssertNil(second)
        let third = try FileLock.acquire(path)
        XCTAssertEqual(third.path, path)
    }

    /// `acquire` waits for the holder rather than failing.
    func testAcquireWaitsForTheHolder() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-lock-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let holder = try XCTUnwrap(try FileLock.tryAcquire(path))
        let released = expectation(description: "waiter got the lock")
        let start = Date()
        DispatchQueue.global().async {
            if let lock = try? FileLock.acquire(path) {
                XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.2)
                lock.release()
                released.fulfill()
            }
        }
        Thread.sleep(forTimeInterval: 0.3)
        holder.release()
        wait(for: [released], timeout: 30)
    }

    func testMissingFolderIsAnError() {
        let path = "/nonexistent-loom-folder/run/train.lock"
        XCTAssertThrowsError(try FileLock.tryAcquire(path)) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("No such file"), "\(error)")
        }
        XCTAssertThrowsError(try FileLock.acquire(path))
    }
}
