import Foundation
import LoomData
import LoomRuntime
import LoomTestSupport
import XCTest

final class DataTests: TemporaryDirectoryTestCase {
    override var directoryPrefix: String { "loom-data-tests-" }

    // MARK: - Helpers

    /// A hand-written IDX encoder, independent of the reader under test.
    private func idxBytes(type: UInt8, shape: [Int], payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, type, UInt8(shape.count)]
        for dimension in shape {
            bytes += [UInt8(dimension >> 24 & 0xff), UInt8(dimension >> 16 & 0xff),
                      UInt8(dimension >> 8 & 0xff), UInt8(dimension & 0xff)]
        }
        return bytes + payload
    }

    private func write(_ bytes: [UInt8], _ name: String, in folder: String? = nil) throws -> String {
        let path = (folder ?? directory) + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func subdirectory(_ name: String) throws -> String {
        let path = directory + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    // MARK: - Gzip

    func testGzipRoundTripLimitAndConcatenatedMembers() throws {
        let original = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 251) }
        let compressed = try Gzip.compress(original)
        XCTAssertTrue(Gzip.isGzip(compressed))
        XCTAssertFalse(Gzip.isGzip(original))
        XCTAssertLessThan(compressed.count, original.count)
        XCTAssertEqual(try Gzip.decompress(compressed), original)
        XCTAssertEqual(try Gzip.decompress(compressed, limit: 100), Array(original[0..<100]))
        let path = try write(compressed, "data.gz")
        XCTAssertEqual(try Gzip.decompress(path: path), original)
        let second: [UInt8] = [1, 2, 3]
        XCTAssertEqual(try Gzip.decompress(compressed + Gzip.compress(second)), original + second)
        XCTAssertEqual(try Gzip.decompress(Gzip.compress([])), [])
    }

    func testGzipCorruptAndTruncated() throws {
        let original = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 * $0 / 3) }
        let compressed = try Gzip.compress(original)
        let truncatedPath = try write(Array(compressed.dropLast(compressed.count / 2)), "cut.gz")
        assertError(["cut.gz", "truncated"]) { _ = try Gzip.decompress(path: truncatedPath) }
        var corrupt = compressed
        corrupt[3] = 0xff  // reserved flag bits in the gzip header
        assertError(["bad.gz", "corrupt"]) { _ = try Gzip.decompress(corrupt, source: "bad.gz") }
        var badCRC = compressed
        badCRC[badCRC.count - 6] ^= 0x55  // inside the CRC-32 trailer
        assertError(["crc.gz", "corrupt"]) { _ = try Gzip.decompress(badCRC, source: "crc.gz") }
    }

    // MARK: - IDX

    func testIDXPlainAndGzipRoundTrip() throws {
        let payload = (0..<60).map { UInt8($0 * 4) }
        let bytes = idxBytes(type: 0x08, shape: [3, 4, 5], payload: payload)
        let plain = try write(bytes, "images.idx")
        let gz = try write(Gzip.compress(bytes), "images-gz.bin")  // detection is by content, not name
        for path in [plain, gz] {
            let array = try IDXReader.read(path: path)
            XCTAssertEqual(array.type, .uint8)
            XCTAssertEqual(array.shape, [3, 4, 5])
            XCTAssertEqual(array.payload, payload)
            XCTAssertEqual(array.floats(), payload.map(Float.init))
            let limited = try IDXReader.read(path: path, limit: 2)
            XCTAssertEqual(limited.shape, [2, 4, 5])
            XCTAssertEqual(limited.headerShape, [3, 4, 5])
            XCTAssertEqual(limited.payload, Array(payload[0..<40]))
        }
        XCTAssertEqual(IDXReader.encode(try IDXReader.read(path: plain)), bytes)
    }

    func testIDXWiderTypesConvertToFloat() throws {
        func bigEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
            values.flatMap { value in withUnsafeBytes(of: value.bigEndian) { Array($0) } }
        }
        let int16 = try IDXReader.parse(idxBytes(type: 0x0B, shape: [3], payload: bigEndian([Int16(-2), 300, 7])))
        XCTAssertEqual(int16.floats(), [-2, 300, 7])
        XCTAssertEqual(try int16.integers(), [-2, 300, 7])
        let int32 = try IDXReader.parse(idxBytes(type: 0x0C, shape: [2], payload: bigEndian([Int32(-70000), 5])))
        XCTAssertEqual(int32.floats(), [-70000, 5])
        let f32 = try IDXReader.parse(idxBytes(type: 0x0D, shape: [2], payload: bigEndian([Float(1.5), -0.25].map(\.bitPattern))))
        XCTAssertEqual(f32.floats(), [1.5, -0.25])
        let f64 = try IDXReader.parse(idxBytes(type: 0x0E, shape: [1, 2], payload: bigEndian([2.5, -8.0].map(\.bitPattern))))
        XCTAssertEqual(f64.floats(), [2.5, -8])
        XCTAssertEqual(f64.shape, [1, 2])
    }

    func testIDXErrors() throws {
        let wrongMagic = try write([0x50, 0x4B, 0x03, 0x04, 0, 0, 0, 1, 9], "zip.idx")
        assertError(["zip.idx", "wrong magic number", "0x50 0x4B 0x03 0x04"]) { _ = try IDXReader.read(path: wrongMagic) }

        let header = idxBytes(type: 0x08, shape: [10, 28, 28], payload: [])
        let short = try write(header + [UInt8](repeating: 1, count: 1000), "short.idx")
        assertError(["short.idx", "truncated", "7840", "1000"]) { _ = try IDXReader.read(path: short) }
        let shortGz = try write(Gzip.compress(header + [UInt8](repeating: 1, count: 1000)), "short.idx.gz")
        assertError(["short.idx.gz", "truncated", "7840", "1000"]) { _ = try IDXReader.read(path: shortGz) }
        // With a limit the reader stops early: 1 image of 784 bytes is there.
        XCTAssertEqual(try IDXReader.read(path: short, limit: 1).shape, [1, 28, 28])
        let cutHeader = try write([0, 0, 8, 3, 0, 0], "header.idx")
        assertError(["header.idx", "truncated", "12", "2"]) { _ = try IDXReader.read(path: cutHeader) }

        let unsupported = try write(idxBytes(type: 0x0A, shape: [1], payload: [0]), "type.idx")
        assertError(["type.idx", "unsupported", "0x0A"]) { _ = try IDXReader.read(path: unsupported) }

        assertError([directory + "/nope.idx", "not found"]) { _ = try IDXReader.read(path: self.directory + "/nope.idx") }
    }

    // MARK: - MNIST-style data sets

    func testFashionMNISTLayoutPaddingAndErrors() throws {
        let root = try subdirectory("fmnist")
        // Three 28×28 images: all 0, all 255, and a gradient; labels 0, 9, 4.
        var pixels = [UInt8](repeating: 0, count: 784) + [UInt8](repeating: 255, count: 784)
        pixels += (0..<784).map { UInt8($0 % 256) }
        _ = try write(Gzip.compress(idxBytes(type: 0x08, shape: [3, 28, 28], payload: pixels)),
                      "t10k-images-idx3-ubyte.gz", in: root)
        _ = try write(idxBytes(type: 0x08, shape: [3], payload: [0, 9, 4]), "t10k-labels-idx1-ubyte", in: root)

        let padded = try Dataset.fashionMNIST(root: root, split: .test)
        XCTAssertEqual(padded.images.shape, [3, 1, 32, 32])
        XCTAssertEqual(padded.labels, [0, 9, 4])
        XCTAssertEqual(padded.numClasses, 10)
        let bright = Array(padded.images.floats[1024..<2048])
        XCTAssertEqual(bright[0], -1)  // padding corner
        XCTAssertEqual(bright[1 * 32 + 5], -1)  // rows 0–1 are padding
        XCTAssertEqual(bright[2 * 32 + 1], -1)  // columns 0–1 are padding
        XCTAssertEqual(bright[2 * 32 + 2], 1)  // first image pixel
        XCTAssertEqual(bright[29 * 32 + 29], 1)  // last image pixel
        XCTAssertEqual(bright[29 * 32 + 30], -1)
        XCTAssertEqual(bright.filter { $0 == 1 }.count, 784)
        XCTAssertEqual(padded.images.floats[2048 + 2 * 32 + 3], 1 / 127.5 - 1, accuracy: 1e-6)

        let unpadded = try Dataset.fashionMNIST(root: root, split: .test, padTo: nil, limit: 2)
        XCTAssertEqual(unpadded.images.shape, [2, 1, 28, 28])
        XCTAssertEqual(unpadded.labels, [0, 9])
        XCTAssertEqual(unpadded.images.floats.min(), -1)
        XCTAssertEqual(unpadded.images.floats.max(), 1)

        assertError(["train images", "train-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte"]) {
            _ = try Dataset.fashionMNIST(root: root, split: .train)
        }
        assertError(["does-not-exist", "apt-get install dataset-fashion-mnist"]) {
            _ = try Dataset.fashionMNIST(root: self.directory + "/does-not-exist")
        }
        _ = try write(idxBytes(type: 0x08, shape: [2], payload: [0, 9]), "t10k-labels-idx1-ubyte", in: root)
        assertError(["3 images", "2 labels", "t10k-labels-idx1-ubyte"]) { _ = try Dataset.fashionMNIST(root: root, split: .test) }
        _ = try write(idxBytes(type: 0x08, shape: [3], payload: [0, 10, 4]), "t10k-labels-idx1-ubyte", in: root)
        assertError(["label 10", "0..<10"]) { _ = try Dataset.fashionMNIST(root: root, split: .test) }
    }

    func testRealFashionMNISTTestSplit() throws {
        let root = Dataset.fashionMNISTDefaultRoot
        guard FileManager.default.fileExists(atPath: root) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(root) (apt-get install dataset-fashion-mnist)")
        }
        let data = try Dataset.fashionMNIST(root: root, split: .test, limit: 100)
        XCTAssertEqual(data.images.shape, [100, 1, 32, 32])
        XCTAssertEqual(data.labels.count, 100)
        XCTAssertEqual(data.images.floats.min(), -1)
        XCTAssertLessThanOrEqual(data.images.floats.max()!, 1)
        XCTAssertGreaterThan(data.images.floats.max()!, 0.9)
        XCTAssertTrue(data.labels.allSatisfy { (0..<10).contains($0) })
        XCTAssertGreaterThan(Set(data.labels).count, 5)
        XCTAssertEqual(Array(data.images.floats[0..<64]), [Float](repeating: -1, count: 64))  // top padding rows
    }

    // MARK: - Dataset.batch

    func testBatchGathersRowsInOrder() throws {
        let images = HostTensor(shape: [4, 2, 1, 3], floats: (0..<24).map(Float.init))
        let data = try Dataset(images: images, labels: [3, 1, 0, 2], numClasses: 4)
        let (batch, labels) = data.batch(indices: [2, 0, 2])
        XCTAssertEqual(batch.shape, [3, 2, 1, 3])
        XCTAssertEqual(batch.floats, (12..<18).map(Float.init) + (0..<6).map(Float.init) + (12..<18).map(Float.init))
        XCTAssertEqual(labels, HostTensor(shape: [3], ints: [0, 3, 0]))
        XCTAssertEqual(data.batch(indices: []).images.shape, [0, 2, 1, 3])
        assertError(["2 labels"]) { _ = try Dataset(images: images, labels: [0, 1], numClasses: 4) }
    }

    // MARK: - Latent folders

    private func writeLatentShards(_ folder: String) throws -> (latents: [Float], labels: [Int64]) {
        let a = (0..<(3 * 2 * 2 * 2)).map { Float($0) }
        let b = (0..<(2 * 2 * 2 * 2)).map { Float(100 + $0) }
        try LatentFolder.writeShard(latents: HostTensor(shape: [3, 2, 2, 2], floats: a), labels: [0, 4, 1], to: folder + "/shard-000.safetensors")
        try LatentFolder.writeShard(latents: HostTensor(shape: [2, 2, 2, 2], floats: b), labels: [2, 2], to: folder + "/shard-001.safetensors")
        return (a + b, [0, 4, 1, 2, 2])
    }

    func testLatentFolderRoundTripWithStats() throws {
        let folder = try subdirectory("latents")
        let (latents, labels) = try writeLatentShards(folder)
        let raw = try LatentFolder.load(path: folder)
        XCTAssertEqual(raw.images.shape, [5, 2, 2, 2])
        XCTAssertEqual(raw.images.floats, latents)
        XCTAssertEqual(raw.labels, labels)
        XCTAssertEqual(raw.numClasses, 5)

        try LatentFolder.writeStats(.init(mean: [1, -2], std: [2, 0.5]), in: folder)
        let normalized = try LatentFolder.load(path: folder, numClasses: 10)
        XCTAssertEqual(normalized.numClasses, 10)
        let expected = latents.enumerated().map { i, x -> Float in
            (i / 4) % 2 == 0 ? (x - 1) / 2 : (x + 2) / 0.5
        }
        XCTAssertEqual(normalized.images.floats, expected)
        XCTAssertEqual(try LatentFolder.load(path: folder, normalize: false).images.floats, latents)
        XCTAssertEqual(try LatentFolder.shardPaths(in: folder).map { ($0 as NSString).lastPathComponent },
                       ["shard-000.safetensors", "shard-001.safetensors"])
    }

    func testLatentFolderErrors() throws {
        let empty = try subdirectory("empty")
        assertError(["empty", "no *.safetensors shards", "it is empty"]) { _ = try LatentFolder.load(path: empty) }

        let missingKey = try subdirectory("missing-key")
        try SafeTensors.write([("latents", HostTensor(shape: [1, 1, 1, 1], floats: [0]))], metadata: [:],
                              to: missingKey + "/a.safetensors")
        assertError(["a.safetensors", "missing tensor 'labels'"]) { _ = try LatentFolder.load(path: missingKey) }

        let mismatch = try subdirectory("mismatch")
        try LatentFolder.writeShard(latents: HostTensor(shape: [1, 4, 2, 2], floats: .init(repeating: 0, count: 16)), labels: [0],
                                    to: mismatch + "/a.safetensors")
        try LatentFolder.writeShard(latents: HostTensor(shape: [1, 4, 4, 4], floats: .init(repeating: 0, count: 64)), labels: [0],
                                    to: mismatch + "/b.safetensors")
        assertError(["b.safetensors", "[4, 4, 4]", "a.safetensors", "[4, 2, 2]"]) { _ = try LatentFolder.load(path: mismatch) }

        let labelCount = try subdirectory("label-count")
        try SafeTensors.write([("latents", HostTensor(shape: [2, 1, 1, 1], floats: [0, 1])),
                               ("labels", HostTensor(shape: [3], ints: [0, 1, 2]))], metadata: [:],
                              to: labelCount + "/a.safetensors")
        assertError(["a.safetensors", "2 latents but 3 labels"]) { _ = try LatentFolder.load(path: labelCount) }

        let stats = try subdirectory("stats")
        _ = try writeLatentShards(stats)
        try LatentFolder.writeStats(.init(mean: [0, 0, 0], std: [1, 1, 1]), in: stats)
        assertError(["stats.safetensors", "'mean' must be f32 [2]", "[3]"]) { _ = try LatentFolder.load(path: stats) }
        try LatentFolder.writeStats(.init(mean: [0, 0], std: [1, 0]), in: stats)
        assertError(["stats.safetensors", "std[1] = 0.0", "> 0"]) { _ = try LatentFolder.load(path: stats) }
        try LatentFolder.writeStats(.init(mean: [0, 0], std: [-1, 1]), in: stats)
        assertError(["std[0] = -1.0"]) { _ = try LatentFolder.load(path: stats) }

        assertError(["label 4", "outside 0..<3"]) { _ = try LatentFolder.load(path: stats, numClasses: 3, normalize: false) }
        assertError(["not found"]) { _ = try LatentFolder.load(path: self.directory + "/absent") }
    }

    // MARK: - BatchSampler

    func testBatchSamplerCoversEachIndexOncePerEpochAndDropsTheRemainder() {
        var sampler = BatchSampler(count: 103, batchSize: 10, seed: 42)
        XCTAssertEqual(sampler.batchesPerEpoch, 10)
        var epochs: [[Int]] = []
        for _ in 0..<3 {
            var seen: [Int] = []
            for _ in 0..<10 {
                let batch = sampler.next()
                XCTAssertEqual(batch.count, 10)
                seen += batch
            }
            XCTAssertEqual(Set(seen).count, 100)  // no repeats within an epoch
            XCTAssertTrue(seen.allSatisfy { (0..<103).contains($0) })
            epochs.append(seen)
        }
        XCTAssertEqual(sampler.position, 30)
        XCTAssertEqual(sampler.epoch, 3)
        XCTAssertNotEqual(epochs[0], epochs[1])
        XCTAssertNotEqual(epochs[0], Array(0..<100))
        XCTAssertEqual(Set(BatchSampler.permutation(count: 103, seed: 42, epoch: 5)), Set(0..<103))
    }

    func testBatchSamplerIsDeterministicAndResumable() {
        var first = BatchSampler(count: 50, batchSize: 8, seed: 7)
        var second = BatchSampler(count: 50, batchSize: 8, seed: 7)
        let a = (0..<20).map { _ in first.next() }
        let b = (0..<20).map { _ in second.next() }
        XCTAssertEqual(a, b)
        var other = BatchSampler(count: 50, batchSize: 8, seed: 8)
        XCTAssertNotEqual((0..<20).map { _ in other.next() }, a)

        var resumed = BatchSampler(count: 50, batchSize: 8, seed: 7, position: 9)  // mid-epoch 1
        XCTAssertEqual((9..<20).map { _ in resumed.next() }, Array(a[9...]))
        XCTAssertEqual(resumed, first)
        XCTAssertEqual(first.batch(at: 13), a[13])
        var skipped = BatchSampler(count: 50, batchSize: 8, seed: 7)
        skipped.position = 18
        XCTAssertEqual(skipped.next(), a[18])
    }
}
