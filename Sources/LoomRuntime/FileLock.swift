import Foundation

/// An advisory lock (`flock`) on a file, held until `release()`, deinit or the end of the process
/// (the kernel drops it with the descriptor, so a killed holder never leaves a stale lock). Two
/// `FileLock`s on one path exclude each other within a process too.
public final class FileLock {
    public let path: String
    private var descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Waits until the lock on `path` (created when missing) is free and takes it.
    public static func acquire(_ path: String) throws -> FileLock {
        let descriptor = try open(path)
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw RuntimeError("cannot lock \(path): \(reason)")
            }
        }
        return FileLock(path: path, descriptor: descriptor)
    }

    /// Takes the lock on `path` (created when missing), or returns nil at once when someone holds it.
    public static func tryAcquire(_ path: String) throws -> FileLock? {
        let descriptor = try open(path)
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return FileLock(path: path, descriptor: descriptor) }
        let code = errno
        close(descriptor)
        if code == EWOULDBLOCK { return nil }
        throw RuntimeError("cannot lock \(path): \(String(cString: strerror(code)))")
    }

    private static func open(_ path: String) throws -> Int32 {
        let descriptor = Foundation.open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw RuntimeError("cannot open the lock file \(path): \(String(cString: strerror(errno)))") }
        return descriptor
    }

    /// Gives the lock up (again: nothing).
    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
