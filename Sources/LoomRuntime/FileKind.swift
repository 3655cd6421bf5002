import Foundation

/// What a path names, checked before a loader opens it, so that a FIFO, a device or a directory is
/// reported as such (and never blocks or reads forever) instead of as a permission error.
public enum FileKind {
    /// Why a path cannot be read as a regular file.
    public enum Problem: Equatable, CustomStringConvertible {
        /// Nothing at the path.
        case missing
        /// Something else: "is a directory, not a file", "is a FIFO, not a regular file", ….
        case other(String)

        public var description: String {
            switch self {
            case .missing: return "does not exist"
            case .other(let why): return why
            }
        }
    }

    /// Nil when `path` is a readable regular file; otherwise why it cannot be read as one.
    public static func problem(with path: String) -> Problem? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ENOENT ? .missing : .other("cannot be examined: \(String(cString: strerror(errno)))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return .other("is a directory, not a file")
        case S_IFIFO: return .other("is a FIFO (named pipe), not a regular file")
        case S_IFCHR: return .other("is a character device, not a regular file")
        case S_IFBLK: return .other("is a block device, not a regular file")
        case S_IFSOCK: return .other("is a socket, not a regular file")
        default: return .other("is not a regular file")
        }
        guard access(path, R_OK) == 0 else { return .other("is not readable: \(String(cString: strerror(errno)))") }
        return nil
    }

    /// The whole content of the regular file at `path` (mapped when safe). An empty file gives empty
    /// data without reading: Foundation's reader leaks its buffer on empty files (found by fuzzing).
    public static func contents(of path: String) throws -> Data {
        var info = stat()
        if stat(path, &info) == 0, info.st_size == 0, info.st_mode & S_IFMT == S_IFREG { return Data() }
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
    }
}
