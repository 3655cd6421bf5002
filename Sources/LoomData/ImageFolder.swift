import CTurboJPEG
import Foundation
import LoomRuntime

/// A folder of labelled images as ImageNet-style datasets ship them: one sub-folder per class
/// (labels are the sub-folders' indices in name order), PNG or JPEG files inside. Hidden entries
/// are ignored; any other file is an error naming it, so that nothing is silently left out.
public struct ImageFolder {
    /// One image file and its class.
    public struct Entry: Equatable, Sendable {
        public var path: String
        public var label: Int
    }

    public let root: String
    public let classes: [String]
    public let entries: [Entry]
    /// Decoded images larger than this many pixels are refused (a hostile header cannot make the
    /// reader allocate without bound).
    public static let maxPixels = 1 << 28

    public init(root: String) throws {
        self.root = root
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DiffusionError("image folder '\(root)' is not a directory")
        }
        func listing(_ path: String) throws -> [String] {
            do {
                return try manager.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
            } catch {
                throw DiffusionError("image folder '\(path)' is unreadable: \(error.localizedDescription)")
            }
        }
        let classes = try listing(root).filter { name in
            var sub: ObjCBool = false
            return manager.fileExists(atPath: root + "/" + name, isDirectory: &sub) && sub.boolValue
        }
        guard !classes.isEmpty else {
            throw DiffusionError("image folder '\(root)' has no class sub-folders (expected ROOT/<class>/<image>.png|jpg)")
        }
        var entries: [Entry] = []
        for (label, name) in classes.enumerated() {
            for file in try listing(root + "/" + name) {
                let path = root + "/" + name + "/" + file
                guard ImageFolder.format(of: file) != nil else {
                    throw DiffusionError("\(path): not a .png, .jpg or .jpeg file")
                }
                entries.append(Entry(path: path, label: label))
            }
        }
        guard !entries.isEmpty else { throw DiffusionError("image folder '\(root)' has class folders but no images") }
        self.classes = classes
        self.entries = entries
    }

    enum Format { case png, jpeg }

    static func format(of name: String) -> Format? {
        let lower = name.lowercased()
        if lower.hasSuffix(".png") { return .png }
        if lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg") { return .jpeg }
        return nil
    }

    /// The image at `path` as 8-bit RGB (grey is replicated, alpha dropped).
    public static func readRGB(_ path: String) throws -> ImageResampling.Image {
        switch format(of: path) {
        case .png:
            let png = try PNGReader.read(path: path)
            guard png.width * png.height <= maxPixels else { throw DiffusionError("\(path): \(png.width)×\(png.height) is too large") }
            let pixels = png.width * png.height
            var rgb = [UInt8](repeating: 0, count: pixels * 3)
            for i in 0..<pixels {
                for c in 0..<3 {
                    let source = png.channels >= 3 ? c : 0
                    rgb[i * 3 + c] = png.pixels[i * png.channels + source]
                }
            }
            return ImageResampling.Image(width: png.width, height: png.height, channels: 3, pixels: rgb)
        case .jpeg:
            return try readJPEG(path)
        case nil:
            throw DiffusionError("\(path): not a .png, .jpg or .jpeg file")
        }
    }

    /// Decodes a JPEG with libjpeg-turbo (accurate integer DCT and fancy upsampling, as Pillow does).
    static func readJPEG(_ path: String) throws -> ImageResampling.Image {
        let bytes = try readFileBytes(path: path, what: "JPEG file")
        guard let handle = tjInitDecompress() else { throw DiffusionError("\(path): cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        func failure(_ what: String) -> DiffusionError {
            DiffusionError("\(path): \(what): \(String(cString: tjGetErrorStr2(handle)))")
        }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(handle, bytes, UInt(bytes.count), &width, &height, &subsampling, &colorspace) == 0 else {
            throw failure("not a readable JPEG")
        }
        guard width > 0, height > 0, Int(width) * Int(height) <= maxPixels else {
            throw DiffusionError("\(path): a \(width)×\(height) JPEG is outside the 1…\(maxPixels) pixels Loom reads")
        }
        var rgb = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let status = rgb.withUnsafeMutableBufferPointer { out in
            tjDecompress2(handle, bytes, UInt(bytes.count), out.baseAddress, width, 0, height, Int32(TJPF_RGB.rawValue), 0)
        }
        guard status == 0 else { throw failure("damaged JPEG data") }
        return ImageResampling.Image(width: Int(width), height: Int(height), channels: 3, pixels: rgb)
    }
}
