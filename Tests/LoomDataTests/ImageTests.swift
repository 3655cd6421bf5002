import Foundation
import LoomData
import LoomRuntime
import LoomTestSupport
import XCTest

final class ImageTests: TemporaryDirectoryTestCase {
    override var directoryPrefix: String { "loom-image-tests-" }

    // MARK: - Helpers

    /// Files in the test directory (to check that no temporary files are left).
    private func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    /// Byte of an interleaved image at (x, y), channel `c`.
    private func pixel(_ image: (width: Int, height: Int, channels: Int, pixels: [UInt8]),
                       _ x: Int, _ y: Int, _ c: Int = 0) -> UInt8 {
        image.pixels[(y * image.width + x) * image.channels + c]
    }

    /// Six 4×4 grayscale samples; sample n has value v(n) everywhere except pixel (0, 0) = -1
    /// and pixel (3, 3) = +1.
    private func graySamples() -> (HostTensor, [Float]) {
        let levels: [Float] = [0, -1, 1, 0.5, -0.5, 2]   // 2 clips to 1
        var data: [Float] = []
        for level in levels {
            var image = [Float](repeating: level, count: 16)
            image[0] = -1
            image[15] = 1
            data += image
        }
        return (HostTensor(shape: [6, 1, 4, 4], floats: data), levels)
    }

    // MARK: - PNG round trip

    func testPNGRoundTripGrayRGBAndRGBA() throws {
        for channels in [1, 3, 4] {
            let (width, height) = (5, 3)
            let pixels = (0..<(width * height * channels)).map { UInt8(($0 * 37 + 11) % 256) }
            let path = directory + "/raw\(channels).png"
            try PNGWriter.write(path: path, width: width, height: height, channels: channels, pixels: pixels)
            let back = try PNGReader.read(path: path)
            XCTAssertEqual(back.width, width)
            XCTAssertEqual(back.height, height)
            XCTAssertEqual(back.channels, channels)
            XCTAssertEqual(back.pixels, pixels)
        }
        XCTAssertEqual(try listing(), ["raw1.png", "raw3.png", "raw4.png"])
    }

    func testPNGOverwriteIsAtomicReplacement() throws {
        let path = directory + "/same.png"
        try PNGWriter.write(path: path, width: 2, height: 2, channels: 1, pixels: [0, 0, 0, 0])
        try PNGWriter.write(path: path, width: 3, height: 1, channels: 1, pixels: [7, 8, 9])
        let back = try PNGReader.read(path: path)
        XCTAssertEqual(back.width, 3)
        XCTAssertEqual(back.pixels, [7, 8, 9])
        XCTAssertEqual(try listing(), ["same.png"])
    }

    func testPNGWriterErrors() throws {
        let path = directory + "/bad.png"
        assertError(["bad.png", "5 channels"]) {
            try PNGWriter.write(path: path, width: 1, height: 1, channels: 5, pixels: [0, 0, 0, 0, 0])
        }
        assertError(["bad.png", "0x2", "positive"]) {
            try PNGWriter.write(path: path, width: 0, height: 2, channels: 1, pixels: [])
        }
        assertError(["bad.png", "needs 4 bytes, got 3"]) {
            try PNGWriter.write(path: path, width: 2, height: 2, channels: 1, pixels: [0, 0, 0])
        }
        let missing = directory + "/no-such-dir/out.png"
        assertError(["no-such-dir/out.png"]) {
            try PNGWriter.write(path: missing, width: 1, height: 1, channels: 1, pixels: [0])
        }
        XCTAssertEqual(try listing(), [])
    }

    func testPNGReaderErrors() throws {
        assertError(["missing.png", "not found"]) { _ = try PNGReader.read(path: self.directory + "/missing.png") }
        assertError(["is a directory"]) { _ = try PNGReader.read(path: self.directory) }
        let junk = directory + "/junk.png"
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: junk))
        assertError(["junk.png"]) { _ = try PNGReader.read(path: junk) }
    }

    // MARK: - Grid layout and value mapping

    func testGrayGridLayoutAndValues() throws {
        let (samples, levels) = graySamples()
        let path = directory + "/grid.png"
        try ImageGrid.write(samples, rows: 2, to: path, padding: 1, scale: 2, background: 77)
        let image = try PNGReader.read(path: path)
        // 3 columns of 4·2 pixels + 4 gaps of 1; 2 rows likewise.
        XCTAssertEqual(image.width, 3 * 8 + 4)
        XCTAssertEqual(image.height, 2 * 8 + 3)
        XCTAssertEqual(image.channels, 1)

        // Padding: frame, and the gaps between cells.
        XCTAssertEqual(pixel(image, 0, 0), 77)
        XCTAssertEqual(pixel(image, image.width - 1, image.height - 1), 77)
        XCTAssertEqual(pixel(image, 9, 5), 77)     // vertical gap between columns 0 and 1
        XCTAssertEqual(pixel(image, 5, 9), 77)     // horizontal gap between rows 0 and 1

        let expected: [UInt8] = [128, 0, 255, 191, 64, 255]   // round((v + 1) · 127.5), clipped
        for n in 0..<6 {
            let x0 = 1 + (n % 3) * 9, y0 = 1 + (n / 3) * 9
            // Top-left source pixel (-1) covers a 2×2 block at the cell corner.
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                XCTAssertEqual(pixel(image, x0 + dx, y0 + dy), 0, "sample \(n) corner")
            }
            // Bottom-right source pixel (+1).
            XCTAssertEqual(pixel(image, x0 + 7, y0 + 7), 255, "sample \(n) far corner")
            XCTAssertEqual(pixel(image, x0 + 6, y0 + 6), 255, "sample \(n) far corner")
            // Interior: the sample's level.
            XCTAssertEqual(pixel(image, x0 + 3, y0 + 4), expected[n], "sample \(n) level \(levels[n])")
            XCTAssertEqual(pixel(image, x0 + 2, y0), expected[n], "sample \(n) top row after corner")
        }
        XCTAssertEqual(try listing(), ["grid.png"])
    }

    func testRenderDefaultsAndPartialLastRow() throws {
        // 5 samples in 2 rows → 3 columns, last cell empty (background).
        let samples = HostTensor(shape: [5, 1, 2, 2], floats: [Float](repeating: -1, count: 20))
        let grid = try ImageGrid.render(samples, rows: 2)
        XCTAssertEqual(grid.width, 3 * 2 + 4 * 2)
        XCTAssertEqual(grid.height, 2 * 2 + 3 * 2)
        XCTAssertEqual(pixel(grid, 2, 2), 0)                  // sample 0 corner
        XCTAssertEqual(pixel(grid, 2 + 2 * 4, 2 + 4), 255)    // empty sixth cell
        XCTAssertEqual(pixel(grid, 2 + 4, 2 + 4), 0)          // sample 4 = row 1, col 1
        XCTAssertEqual(pixel(grid, 0, 0), 255)
    }

    func testRGBGrid() throws {
        // Two 2×2 RGB samples: sample 0 pure red-ish channels, sample 1 varies per channel.
        var data: [Float] = []
        data += [Float](repeating: 1, count: 4) + [Float](repeating: -1, count: 4) + [Float](repeating: 0, count: 4)
        data += [-1, -0.5, 0.5, 1] + [Float](repeating: 1, count: 4) + [Float](repeating: -1, count: 4)
        let samples = HostTensor(shape: [2, 3, 2, 2], floats: data)
        let path = directory + "/rgb.png"
        try ImageGrid.write(samples, rows: 1, to: path, padding: 1, scale: 1, background: 0)
        let image = try PNGReader.read(path: path)
        XCTAssertEqual(image.channels, 3)
        XCTAssertEqual(image.width, 2 * 2 + 3)
        XCTAssertEqual(image.height, 2 + 2)
        XCTAssertEqual([0, 1, 2].map { pixel(image, 1, 1, $0) }, [255, 0, 128])
        XCTAssertEqual([0, 1, 2].map { pixel(image, 4, 1, $0) }, [0, 255, 0])
        XCTAssertEqual([0, 1, 2].map { pixel(image, 5, 1, $0) }, [64, 255, 0])
        XCTAssertEqual([0, 1, 2].map { pixel(image, 4, 2, $0) }, [191, 255, 0])
        XCTAssertEqual([0, 1, 2].map { pixel(image, 5, 2, $0) }, [255, 255, 0])
        XCTAssertEqual([0, 1, 2].map { pixel(image, 3, 1, $0) }, [0, 0, 0])   // gap
    }

    func testLatentChannelsPreview() throws {
        // C = 4: channels 0...2 as RGB, channel 3 ignored.
        let four = HostTensor(shape: [1, 4, 1, 1], floats: [1, 0, -1, 0.5])
        let rgb = try ImageGrid.render(four, rows: 1, padding: 0)
        XCTAssertEqual(rgb.channels, 3)
        XCTAssertEqual(rgb.pixels, [255, 128, 0])
        // C = 2: channel 0 as gray.
        let two = HostTensor(shape: [1, 2, 1, 1], floats: [-1, 1])
        let gray = try ImageGrid.render(two, rows: 1, padding: 0)
        XCTAssertEqual(gray.channels, 1)
        XCTAssertEqual(gray.pixels, [0])
    }

    // MARK: - Errors

    func testGridErrors() throws {
        let ok = HostTensor(shape: [2, 1, 2, 2], floats: [Float](repeating: 0, count: 8))
        assertError(["rank 4"]) { _ = try ImageGrid.render(HostTensor(shape: [2, 4], floats: [Float](repeating: 0, count: 8)), rows: 1) }
        assertError(["empty"]) { _ = try ImageGrid.render(HostTensor(shape: [0, 1, 2, 2], floats: []), rows: 1) }
        assertError(["float"]) { _ = try ImageGrid.render(HostTensor(shape: [1, 1, 1, 1], ints: [0]), rows: 1) }
        assertError(["rows", "0"]) { _ = try ImageGrid.render(ok, rows: 0) }
        assertError(["rows", "-1"]) { _ = try ImageGrid.render(ok, rows: -1) }
        assertError(["scale"]) { _ = try ImageGrid.render(ok, rows: 1, scale: 0) }
        assertError(["padding"]) { _ = try ImageGrid.render(ok, rows: 1, padding: -1) }

        var nan = [Float](repeating: 0, count: 12)
        nan[2 * 4 + 3] = .nan
        assertError(["sample 2", "NaN"]) {
            _ = try ImageGrid.render(HostTensor(shape: [3, 1, 2, 2], floats: nan), rows: 1)
        }
        // NaN in a channel the preview does not show is still an error.
        var hidden = [Float](repeating: 0, count: 8)
        hidden[7] = .nan
        assertError(["sample 1", "NaN", "channel 3"]) {
            _ = try ImageGrid.render(HostTensor(shape: [2, 4, 1, 1], floats: hidden), rows: 1)
        }

        let unwritable = directory + "/missing-dir/grid.png"
        assertError(["missing-dir/grid.png"]) { try ImageGrid.write(ok, rows: 1, to: unwritable) }
        // A NaN grid writes nothing.
        assertError(["NaN"]) {
            try ImageGrid.write(HostTensor(shape: [3, 1, 2, 2], floats: nan), rows: 1, to: self.directory + "/nan.png")
        }
        XCTAssertEqual(try listing(), [])
    }

    // MARK: - Speed

    func testThousandRGBImagesRenderQuickly() throws {
        let count = 1000, size = 32
        let floats = (0..<(count * 3 * size * size)).map { Float($0 % 201) / 100 - 1 }
        let samples = HostTensor(shape: [count, 3, size, size], floats: floats)
        let start = Date()
        let grid = try ImageGrid.render(samples, rows: 25, padding: 2, scale: 1)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(grid.width, 40 * 32 + 41 * 2)
        XCTAssertEqual(grid.height, 25 * 32 + 26 * 2)
        // Generous bound so a loaded machine does not flake; typically far below 1 s.
        XCTAssertLessThan(elapsed, 3.0, "rendering 1,000 32×32 RGB images took \(elapsed) s")
        let path = directory + "/big.png"
        try PNGWriter.write(path: path, width: grid.width, height: grid.height, channels: 3, pixels: grid.pixels)
        XCTAssertEqual(try PNGReader.read(path: path).pixels, grid.pixels)
        print("ImageGrid: rendered 1,000 32×32 RGB images in \(String(format: "%.3f", elapsed)) s")
    }
}
