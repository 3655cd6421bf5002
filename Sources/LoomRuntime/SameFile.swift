import Foundation

/// Whether two paths name the same file (same device and inode), so that an output never replaces
/// an input, whatever links or spellings the paths use.
public enum SameFile {
    public static func check(_ a: String, _ b: String) -> Bool {
        var first = stat(), second = stat()
        guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
        return first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }
}
