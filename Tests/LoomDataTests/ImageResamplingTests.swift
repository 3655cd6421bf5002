import LoomData
import LoomTestSupport
import XCTest

/// `loom encode`'s image preparation against Pillow (`scripts/make-image-fixtures.py`): PNG (RGB and
/// grey) and JPEG decoding, then ADM's centre crop — box halving, bicubic resize, crop — at 16 pixels.
final class ImageResamplingTests: XCTestCase {
    let folder = RepositoryPaths.fixtures.appendingPathComponent("images")

    func testCenterCropMatchesPillow() throws {
        for (name, input) in [("a.png", "folder/cat/a.png"), ("b.png", "folder/cat/b.png"), ("c.jpg", "folder/dog/c.jpg")] {
            let image = try ImageFolder.readRGB(folder.appendingPathComponent(input).path)
            let prepared = ImageResampling.centerCrop(image, size: 16)
            let expected = try PNGReader.read(path: folder.appendingPathComponent(name + ".crop16.png").path)
            XCTAssertEqual([prepared.width, prepared.height, prepared.channels], [expected.width, expected.height, expected.channels], name)
            let largest = zip(prepared.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertEqual(largest, 0, "\(name): largest difference from Pillow \(largest)")
        }
    }

    func testFolderListsClassesInNameOrderAndRefusesStrangers() throws {
        let images = try ImageFolder(root: folder.appendingPathComponent("folder").path)
        XCTAssertEqual(images.classes, ["cat", "dog"])
        XCTAssertEqual(images.entries.map(\.label), [0, 0, 1])
        // One level up, `folder` is the only class and its entries are folders, not images.
        XCTAssertThrowsError(try ImageFolder(root: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("folder/cat: not a .png, .jpg or .jpeg file"), "\(error)")
        }
    }

    func testDamagedJPEGIsRefusedWithItsName() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-jpeg-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = try Data(contentsOf: folder.appendingPathComponent("folder/dog/c.jpg"))
        for (name, bytes) in [("truncated.jpg", good.prefix(good.count / 3)), ("garbage.jpg", Data(repeating: 0x5A, count: 400)),
                              ("empty.jpg", Data())] {
            let path = directory.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try ImageFolder.readRGB(path)) { error in
                XCTAssertTrue("\(error)".contains(name), "\(error)")
            }
        }
    }
}
