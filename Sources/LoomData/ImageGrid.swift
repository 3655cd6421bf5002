import Foundation
import LoomRuntime

/// Lays a batch of samples out as one image: a `rows × cols` grid of cells separated (and
/// framed) by `padding` pixels of a `background` grey level.
///
/// Input: a float tensor `[N, C, H, W]` with values in [-1, 1]. Each value is clipped to
/// [-1, 1] and mapped to a byte by `round((x + 1) * 127.5)`, so -1 → 0, 0 → 128, 1 → 255
/// (ties round away from zero). ±infinity clips like any out-of-range value; NaN is an error
/// naming the sample.
///
/// Channels: C = 1 gives a grayscale image; C = 3 an RGB image. Any other channel count (for
/// example 4-channel latents) is *previewed*: when C ≥ 3, channels 0, 1, 2 are shown as R, G, B
/// and the rest ignored; when C = 2, channel 0 is shown as gray.
///
/// Layout: `cols = ceil(N / rows)`; sample `i` goes to row `i / cols`, column `i % cols`
/// (row-major, so "one row per class" works when samples are grouped by class). Cells left
/// over in the last row (or whole rows when `rows` exceeds what N needs) stay background.
/// Each cell is `H·scale × W·scale` pixels (nearest-neighbour upscaling), so the image is
/// `cols·W·scale + (cols + 1)·padding` wide and `rows·H·scale + (rows + 1)·padding` high.
public enum ImageGrid {
    /// Renders `samples` into interleaved 8-bit pixels (1 channel gray or 3 channels RGB).
    public static func render(_ samples: HostTensor, rows: Int, padding: Int = 2, scale: Int = 1,
                              background: UInt8 = 255) throws
        -> (width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        let layout = try Layout(samples, rows: rows, padding: padding, scale: scale)
        var pixels = [UInt8](repeating: background, count: layout.width * layout.height * layout.outChannels)
        try samples.floats.withUnsafeBufferPointer { source in
            try pixels.withUnsafeMutableBufferPointer { destination in
                try fill(layout, source: source, destination: destination)
            }
        }
        return (layout.width, layout.height, layout.outChannels, pixels)
    }

    /// Renders `samples` (see `render`) and writes the grid as a PNG at `path`, atomically.
    public static func write(_ samples: HostTensor, rows: Int, to path: String, padding: Int = 2,
                             scale: Int = 1, background: UInt8 = 255) throws {
        let grid = try render(samples, rows: rows, padding: padding, scale: scale, background: background)
        try PNGWriter.write(path: path, width: grid.width, height: grid.height, channels: grid.channels,
                            pixels: grid.pixels)
    }

    /// Validated geometry of one grid.
    private struct Layout {
        let count: Int, channels: Int, height: Int, width: Int   // width/height: of the whole image
        let cellHeight: Int, cellWidth: Int                      // source H, W
        let rows: Int, cols: Int, padding: Int, scale: Int
        let outChannels: Int

        init(_ samples: HostTensor, rows: Int, padding: Int, scale: Int) throws {
            guard samples.dtype == .f32 else {
                throw DiffusionError("image grid: samples must be a float tensor, got \(samples.dtype)")
            }
            let shape = samples.shape
            guard shape.count == 4 else {
                throw DiffusionError("image grid: samples must have rank 4 [N, C, H, W], got shape \(shape)")
            }
            guard shape.allSatisfy({ $0 > 0 }) else {
                throw DiffusionError("image grid: samples tensor is empty (shape \(shape))")
            }
            guard rows > 0 else { throw DiffusionError("image grid: rows must be positive, got \(rows)") }
            guard padding >= 0 else {
                throw DiffusionError("image grid: padding must be non-negative, got \(padding)")
            }
            guard scale >= 1 else { throw DiffusionError("image grid: scale must be at least 1, got \(scale)") }

            count = shape[0]; channels = shape[1]; cellHeight = shape[2]; cellWidth = shape[3]
            self.rows = rows
            cols = (count + rows - 1) / rows
            self.padding = padding
            self.scale = scale
            outChannels = channels >= 3 ? 3 : 1

            let (w, h) = (Self.extent(cols, cellWidth, scale, padding), Self.extent(rows, cellHeight, scale, padding))
            guard let w, let h, w <= PNGWriter.maxDimension, h <= PNGWriter.maxDimension else {
                throw DiffusionError("image grid: \(rows)x\(cols) cells of \(cellHeight)x\(cellWidth) at scale "
                                     + "\(scale) with padding \(padding) exceed \(PNGWriter.maxDimension) "
                                     + "pixels per side")
            }
            width = w; height = h
        }

        /// `cells·size·scale + (cells + 1)·padding`, or nil on overflow.
        private static func extent(_ cells: Int, _ size: Int, _ scale: Int, _ padding: Int) -> Int? {
            let (scaled, o1) = size.multipliedReportingOverflow(by: scale)
            let (content, o2) = scaled.multipliedReportingOverflow(by: cells)
            let (gaps, o3) = (cells + 1).multipliedReportingOverflow(by: padding)
            let (total, o4) = content.addingReportingOverflow(gaps)
            return o1 || o2 || o3 || o4 ? nil : total
        }
    }

    /// Maps one value to a byte; nil for NaN.
    @inline(__always)
    private static func byte(_ value: Float) -> UInt8? {
        if value.isNaN { return nil }
        let clipped = value < -1 ? -1 : (value > 1 ? 1 : value)
        return UInt8(((clipped + 1) * 127.5).rounded())
    }

    private static func fill(_ layout: Layout, source: UnsafeBufferPointer<Float>,
                             destination: UnsafeMutableBufferPointer<UInt8>) throws {
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        let h = layout.cellHeight, w = layout.cellWidth, scale = layout.scale
        let plane = h * w
        let sampleStride = layout.channels * plane
        let outC = layout.outChannels
        let rowBytes = layout.width * outC          // bytes per output image row
        let scaledRowBytes = w * scale * outC       // bytes of one cell row
        let cellPitchX = w * scale + layout.padding
        let cellPitchY = h * scale + layout.padding

        for n in 0..<layout.count {
            let sample = src + n * sampleStride
            let gridRow = n / layout.cols, gridCol = n % layout.cols
            let originX = layout.padding + gridCol * cellPitchX
            let originY = layout.padding + gridRow * cellPitchY
            let cell = dst + originY * rowBytes + originX * outC
            // Channels that are not shown must still be free of NaN.
            for c in outC..<max(outC, layout.channels) {
                let input = sample + c * plane
                for i in 0..<plane where input[i].isNaN {
                    throw DiffusionError("image grid: sample \(n) contains NaN "
                                         + "(channel \(c), row \(i / w), column \(i % w))")
                }
            }
            for y in 0..<h {
                // Build the first output row of this source row, then copy it `scale - 1` times.
                let out = cell + y * scale * rowBytes
                for c in 0..<outC {
                    let input = sample + c * plane + y * w
                    for x in 0..<w {
                        guard let value = byte(input[x]) else {
                            throw DiffusionError("image grid: sample \(n) contains NaN "
                                                 + "(channel \(c), row \(y), column \(x))")
                        }
                        var o = out + x * scale * outC + c
                        for _ in 0..<scale {
                            o.pointee = value
                            o += outC
                        }
                    }
                }
                for copy in 1..<scale {
                    (out + copy * rowBytes).update(from: out, count: scaledRowBytes)
                }
            }
        }
    }
}
