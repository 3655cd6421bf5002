import Foundation
import LoomIR

/// The machine's memory, checked before large allocations so that an oversized plan or batch is an
/// error with the figures instead of an allocation failure.
public enum MachineMemory {
    /// Physical memory in bytes (`sysconf`), or nil when unknown.
    public static var physicalBytes: Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: size)
        return overflow ? nil : bytes
    }

    /// Throws unless `parts` (byte counts) add up, without overflow, to at most the machine's memory.
    public static func check(_ parts: Int..., what: String) throws {
        var total = 0
        for part in parts {
            guard part >= 0, let sum = SizeLimits.add(total, part) else {
                throw RuntimeError("\(what) needs more bytes than can be counted (\(parts.map(String.init).joined(separator: " + ")))")
            }
            total = sum
        }
        if let physical = physicalBytes, total > physical {
            throw RuntimeError(String(format: "%@ needs %.2f GiB, more than this machine's %.2f GiB of memory", what,
                                      Double(total) / 1_073_741_824, Double(physical) / 1_073_741_824))
        }
    }
}

