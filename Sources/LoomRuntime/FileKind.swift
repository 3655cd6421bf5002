import Foundation

/// What a path names, checked before a loader opens it, so that a FIFO, a device or a directory is
/// reported as such (and never blocks or reads forever) instead of as a permission error.
public enum FileKind {
    /// Nil when `path` is a readable regular file; otherwise why it cannot be read as one, e.g.
    /// "does not exist", "is a directory, not a file", "is a FIFO, not a regular file".
    public static func problem(with path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ENOENT ? "does not exist" : "cannot be examined: \(String(cString: strerror(errno)))"
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return "is a directory, not a file"
        case S_IFIFO: return "is a FIFO (named pipe), not a regular file"
        case S_IFCHR: return "is a character device, not a regular file"
        case S_IFBLK: return "is a block device, not a regular file"
        case S_IFSOCK: return "is a socket, not a regular file"
        default: return "is not a regular file"
        }
        guard access(path, R_OK) == 0 else { return "is not readable: \(String(cString: strerror(errno)))" }
        return nil
    }
}
