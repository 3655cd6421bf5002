import Foundation
import LoomIR
import LoomRuntime

extension Dataset {
    /// Which half of an MNIST-style data set to load.
    public enum Split: String, Sendable, CaseIterable {
        case train, test

        /// The file-name prefix MNIST-style distributions use: `train` or `t10k`.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// Where the Debian package `dataset-fashion-mnist` installs Fashion-MNIST.
    public static let fashionMNISTDefaultRoot = "/usr/share/datasets/fashion-mnist"

    /// Loads Fashion-MNIST (10 classes, 28×28 grey images) from `root`, which must contain
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
    /// `t10k-labels-idx1-ubyte`, each plain or gzip-compressed (`.gz`); `images.idx3-ubyte`
    /// spellings are accepted too. Images become f32 [N, 1, H, W] in [-1, 1]; with `padTo`, each
    /// image is centred on a `padTo`×`padTo` canvas of the background value -1 (28 → 32 adds
    /// 2 pixels on each side). `limit` keeps the first `limit` samples (only those are decoded).
    public static func fashionMNIST(root: String = fashionMNISTDefaultRoot, split: Split = .train,
                                    padTo: Int? = 32, limit: Int? = nil) throws -> Dataset {
        let hint = "`apt-get install dataset-fashion-mnist` provides the data set in \(fashionMNISTDefaultRoot)"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DiffusionError("Fashion-MNIST directory '\(root)' not found; \(hint)")
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        } catch {
            throw DiffusionError("Fashion-MNIST directory '\(root)' is unreadable: \(error.localizedDescription)")
        }
        func find(_ kind: String, _ rank: Int) throws -> String {
            let stems = ["\(split.filePrefix)-\(kind)-idx\(rank)-ubyte", "\(split.filePrefix)-\(kind).idx\(rank)-ubyte"]
            // Prefer an uncompressed file (faster to read) over a .gz one.
            for compressed in [false, true] {
                let match = entries.first { entry in
                    let lower = entry.lowercased()
                    guard lower.hasSuffix(".gz") == compressed else { return false }
                    return stems.contains(compressed ? String(lower.dropLast(3)) : lower)
                }
                if let match { return root + "/" + match }
            }
            let listing = describeListing(entries)
            throw DiffusionError("Fashion-MNIST directory '\(root)': no \(split.rawValue) \(kind) file named "
                                 + "\(stems[0]) or \(stems[0]).gz; \(listing); \(hint)")
        }
        return try idx(imagesPath: find("images", 3), labelsPath: find("labels", 1), numClasses: 10,
                       padTo: padTo, limit: limit, missingHint: hint)
    }

    /// Loads an MNIST-style pair of IDX files (plain or gzip): images [N, H, W] (or [N, C, H, W])
    /// and labels [N]. uint8 pixels map to [-1, 1] by x/127.5 − 1 (int8: (x+128)/127.5 − 1);
    /// other element types are mapped linearly from their [min, max] to [-1, 1]. `padTo` and
    /// `limit` are as for `fashionMNIST`.
    public static func idx(imagesPath: String, labelsPath: String, numClasses: Int, padTo: Int? = nil,
                           limit: Int? = nil, missingHint: String? = nil) throws -> Dataset {
        if let limit, limit <= 0 {
            throw DiffusionError("IDX data set '\(imagesPath)': limit must be positive, got \(limit)")
        }
        let images = try IDXReader.read(path: imagesPath, limit: limit, missingHint: missingHint)
        let labels = try IDXReader.read(path: labelsPath, limit: limit, missingHint: missingHint)
        guard images.shape.count == 3 || images.shape.count == 4 else {
            throw DiffusionError("IDX image file '\(imagesPath)': expected 3 dimensions [N, H, W] or 4 [N, C, H, W], "
                                 + "found \(images.headerShape.count): \(describeShape(images.headerShape))")
        }
        guard labels.shape.count == 1 else {
            throw DiffusionError("IDX label file '\(labelsPath)': expected 1 dimension [N], found "
                                 + "\(labels.headerShape.count): \(describeShape(labels.headerShape))")
        }
        guard images.headerShape[0] == labels.headerShape[0] else {
            throw DiffusionError("IDX files disagree on the sample count: '\(imagesPath)' holds \(images.headerShape[0]) "
                                 + "images but '\(labelsPath)' holds \(labels.headerShape[0]) labels")
        }
        let n = images.shape[0]
        let c = images.shape.count == 4 ? images.shape[1] : 1
        let h = images.shape[images.shape.count - 2]
        let w = images.shape[images.shape.count - 1]
        guard c > 0, h > 0, w > 0 else {
            throw DiffusionError("IDX image file '\(imagesPath)': empty image shape \(describeShape(images.headerShape))")
        }
        let size = padTo ?? Swift.max(h, w)
        if let padTo, padTo < h || padTo < w {
            throw DiffusionError("IDX image file '\(imagesPath)': cannot pad \(h)×\(w) images to \(padTo)×\(padTo)")
        }
        let (outH, outW) = padTo == nil ? (h, w) : (size, size)
        let top = (outH - h) / 2, left = (outW - w) / 2

        var pixels = [Float](repeating: -1, count: n * c * outH * outW)
        if images.type == .uint8 || images.type == .int8 {
            // Bytes go through a 256-entry table: uint8 x -> x/127.5 - 1, int8 x -> (x+128)/127.5 - 1.
            let signed = images.type == .int8
            let table = (0..<256).map { byte -> Float in
                let value = signed ? Float(Int8(truncatingIfNeeded: byte)) + 128 : Float(byte)
                return value / 127.5 - 1
            }
            pixels.withUnsafeMutableBufferPointer { out in
                images.payload.withUnsafeBufferPointer { src in
                    table.withUnsafeBufferPointer { lut in
                        for plane in 0..<(n * c) {
                            for y in 0..<h {
                                let from = src.baseAddress! + (plane * h + y) * w
                                let row = out.baseAddress! + (plane * outH + top + y) * outW + left
                                for x in 0..<w { row[x] = lut[Int(from[x])] }
                            }
                        }
                    }
                }
            }
        } else {
            // Wider types: map the data's [min, max] linearly onto [-1, 1].
            let values = images.floats()
            let low = values.min() ?? 0, high = values.max() ?? 0
            let scale: Float = high > low ? 2 / (high - low) : 0
            pixels.withUnsafeMutableBufferPointer { out in
                values.withUnsafeBufferPointer { src in
                    for plane in 0..<(n * c) {
                        for y in 0..<h {
                            let from = src.baseAddress! + (plane * h + y) * w
                            let row = out.baseAddress! + (plane * outH + top + y) * outW + left
                            for x in 0..<w { row[x] = (from[x] - low) * scale - 1 }
                        }
                    }
                }
            }
        }
        return try Dataset(images: HostTensor(shape: [n, c, outH, outW], floats: pixels),
                           labels: labels.integers(), numClasses: numClasses, source: imagesPath)
    }
}
