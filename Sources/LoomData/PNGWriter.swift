import CPNG
import Foundation
import LoomRuntime

// 8-bit PNG output (and input, for tests and tools) through libpng's *simplified* API
// (`png_image_write_to_file`, `png_image_begin_read_from_file` / `png_image_finish_read`).
//
// The classic libpng API reports errors by `longjmp`, which must never unwind through Swift
// frames. The simplified API catches those errors inside libpng and returns 0 with the message
// in `png_image.message`, so every failure here surfaces as a `DiffusionError` naming the file.
// Everything that can be checked up front (dimensions, channel count, buffer size) is validated
// before libpng is called.

/// libpng's `PNG_FORMAT_*` bits (png.h), spelled out so they do not depend on how the
/// composite macros import into Swift.
private enum PNGFormat {
    static let alphaFlag: png_uint_32 = 0x01   // PNG_FORMAT_FLAG_ALPHA
    static let colorFlag: png_uint_32 = 0x02   // PNG_FORMAT_FLAG_COLOR
    static let gray: png_uint_32 = 0           // PNG_FORMAT_GRAY
    static let grayAlpha: png_uint_32 = alphaFlag          // PNG_FORMAT_GA
    static let rgb: png_uint_32 = colorFlag                // PNG_FORMAT_RGB
    static let rgba: png_uint_32 = colorFlag | alphaFlag   // PNG_FORMAT_RGBA

    /// The 8-bit format for `channels` interleaved samples per pixel, or nil when unsupported.
    static func format(channels: Int) -> png_uint_32? {
        switch channels {
        case 1: return gray
        case 2: return grayAlpha
        case 3: return rgb
        case 4: return rgba
        default: return nil
        }
    }
}

/// The NUL-terminated message libpng left in `image.message` (at most 64 bytes).
private func pngMessage(_ image: inout png_image) -> String {
    withUnsafeBytes(of: &image.message) { raw -> String in
        let bytes = raw.prefix { $0 != 0 }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.isEmpty ? "unknown libpng error" : text
    }
}

/// Writes 8-bit PNG files: grayscale (1 channel), gray+alpha (2), RGB (3) or RGBA (4).
public enum PNGWriter {
    /// The largest width or height accepted (PNG allows 2^31 - 1; libpng's default reader limit
    /// is 1,000,000, so larger files could not be read back by most tools anyway).
    public static let maxDimension = 1_000_000

    /// Writes `pixels` — `height` rows of `width` pixels, each `channels` interleaved bytes,
    /// rows top to bottom with no padding — as an 8-bit PNG at `path`.
    ///
    /// The file is written to `path.tmp-PID` first and renamed over `path`, so readers never
    /// see a partial image and a failed write leaves no file behind.
    public static func write(path: String, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        try pixels.withUnsafeBufferPointer { buffer in
            try write(path: path, width: width, height: height, channels: channels, buffer: buffer)
        }
    }

    /// As `write(path:width:height:channels:pixels:)`, from a borrowed buffer.
    public static func write(path: String, width: Int, height: Int, channels: Int,
                             buffer: UnsafeBufferPointer<UInt8>) throws {
        guard !path.isEmpty else { throw DiffusionError("PNG output path is empty") }
        guard let format = PNGFormat.format(channels: channels) else {
            throw DiffusionError("cannot write PNG '\(path)': \(channels) channels per pixel; "
                                 + "expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")
        }
        guard width > 0, height > 0 else {
            throw DiffusionError("cannot write PNG '\(path)': image is \(width)x\(height); "
                                 + "width and height must be positive")
        }
        guard width <= maxDimension, height <= maxDimension else {
            throw DiffusionError("cannot write PNG '\(path)': image is \(width)x\(height); "
                                 + "at most \(maxDimension) pixels per side are supported")
        }
        let expected = width * height * channels
        guard buffer.count == expected else {
            throw DiffusionError("cannot write PNG '\(path)': \(width)x\(height)x\(channels) needs "
                                 + "\(expected) bytes, got \(buffer.count)")
        }
        guard let base = buffer.baseAddress else {
            throw DiffusionError("cannot write PNG '\(path)': pixel buffer has no storage")
        }

        let temporary = "\(path).tmp-\(getpid())"
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        image.width = png_uint_32(width)
        image.height = png_uint_32(height)
        image.format = format
        image.flags = 0
        let stride = png_int_32(width * channels)
        let ok = png_image_write_to_file(&image, temporary, 0, UnsafeRawPointer(base), stride, nil)
        guard ok != 0 else {
            let message = pngMessage(&image)
            png_image_free(&image)
            unlink(temporary)
            throw DiffusionError("cannot write PNG '\(path)': \(message)")
        }
        png_image_free(&image)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw DiffusionError("cannot write PNG '\(path)': rename from '\(temporary)' failed: \(reason)")
        }
    }
}

/// Reads 8-bit PNG files back into interleaved bytes (for tests and tools).
public enum PNGReader {
    /// Reads the PNG at `path`. Grayscale files come back with 1 channel, gray+alpha with 2,
    /// colour (including palette) files with 3, colour with transparency with 4. 16-bit files
    /// are reduced to 8 bits by libpng.
    public static func read(path: String) throws -> (width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DiffusionError("PNG file '\(path)' not found")
        }
        guard !isDirectory.boolValue else {
            throw DiffusionError("PNG file '\(path)' is a directory, not a file")
        }

        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            let message = pngMessage(&image)
            png_image_free(&image)
            throw DiffusionError("cannot read PNG '\(path)': \(message)")
        }
        // Keep the file's colour/alpha layout, drop colour-map and linear (16-bit) requests.
        let hasColor = image.format & PNGFormat.colorFlag != 0
        let hasAlpha = image.format & PNGFormat.alphaFlag != 0
        image.format = (hasColor ? PNGFormat.colorFlag : 0) | (hasAlpha ? PNGFormat.alphaFlag : 0)
        let channels = (hasColor ? 3 : 1) + (hasAlpha ? 1 : 0)
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width <= PNGWriter.maxDimension, height <= PNGWriter.maxDimension else {
            png_image_free(&image)
            throw DiffusionError("cannot read PNG '\(path)': unsupported size \(width)x\(height)")
        }

        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let stride = png_int_32(width * channels)
        let ok = pixels.withUnsafeMutableBytes { raw in
            png_image_finish_read(&image, nil, raw.baseAddress, stride, nil)
        }
        guard ok != 0 else {
            let message = pngMessage(&image)
            png_image_free(&image)
            throw DiffusionError("cannot read PNG '\(path)': \(message)")
        }
        png_image_free(&image)
        return (width, height, channels, pixels)
    }
}
