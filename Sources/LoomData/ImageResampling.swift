/// 8-bit image resampling with Pillow's semantics (`Image.resize` with `BOX` or `BICUBIC`), so that
/// images prepared here match the reference pipelines that prepare them with Pillow: a separable
/// filter, widened by the scale when reducing (antialiasing), weights normalised per output pixel
/// and rounded to 22-bit fixed point, the horizontal pass first, each pass rounded and clipped to
/// 8 bits.
public enum ImageResampling {
    /// An interleaved 8-bit image, `height × width × channels`.
    public struct Image: Equatable, Sendable {
        public var width: Int
        public var height: Int
        public var channels: Int
        public var pixels: [UInt8]

        public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
            precondition(pixels.count == width * height * channels)
            (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
        }
    }

    /// The resampling filters.
    public enum Filter: Sendable {
        case box, bicubic

        var support: Double { self == .box ? 0.5 : 2 }

        func weight(_ x: Double) -> Double {
            switch self {
            case .box:
                return x > -0.5 && x <= 0.5 ? 1 : 0
            case .bicubic:
                let a = -0.5, x = abs(x)
                if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0
            }
        }
    }

    static let precisionBits = 32 - 8 - 2

    /// For each output position along an axis of `inSize`: the first input index and the fixed-point weights.
    static func coefficients(inSize: Int, outSize: Int, filter: Filter) -> [(start: Int, weights: [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        return (0..<outSize).map { out in
            let center = (Double(out) + 0.5) * scale
            let first = max(Int(center - support + 0.5), 0)
            let last = min(Int(center + support + 0.5), inSize)
            var weights = (first..<last).map { filter.weight((Double($0) - center + 0.5) / filterScale) }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            let fixed = weights.map { w -> Int32 in
                let scaled = w * Double(1 << precisionBits)
                return Int32(scaled < 0 ? (scaled - 0.5).rounded(.towardZero) : (scaled + 0.5).rounded(.towardZero))
            }
            return (first, fixed)
        }
    }

    static func clip8(_ value: Int64) -> UInt8 {
        let shifted = value >> Int64(precisionBits)
        return UInt8(clamping: min(max(shifted, 0), 255))
    }

    /// Resizes `image` to `width × height` with `filter`.
    public static func resize(_ image: Image, width: Int, height: Int, filter: Filter) -> Image {
        var current = image
        if width != current.width {
            let table = coefficients(inSize: current.width, outSize: width, filter: filter)
            let c = current.channels
            var out = [UInt8](repeating: 0, count: width * current.height * c)
            for y in 0..<current.height {
                for (x, (start, weights)) in table.enumerated() {
                    for channel in 0..<c {
                        var sum = Int64(1) << Int64(precisionBits - 1)
                        for (k, w) in weights.enumerated() {
                            sum += Int64(current.pixels[(y * current.width + start + k) * c + channel]) * Int64(w)
                        }
                        out[(y * width + x) * c + channel] = clip8(sum)
                    }
                }
            }
            current = Image(width: width, height: current.height, channels: c, pixels: out)
        }
        if height != current.height {
            let table = coefficients(inSize: current.height, outSize: height, filter: filter)
            let (c, w) = (current.channels, current.width)
            var out = [UInt8](repeating: 0, count: w * height * c)
            for (y, (start, weights)) in table.enumerated() {
                for x in 0..<w {
                    for channel in 0..<c {
                        var sum = Int64(1) << Int64(precisionBits - 1)
                        for (k, weight) in weights.enumerated() {
                            sum += Int64(current.pixels[((start + k) * w + x) * c + channel]) * Int64(weight)
                        }
                        out[(y * w + x) * c + channel] = clip8(sum)
                    }
                }
            }
            current = Image(width: w, height: height, channels: c, pixels: out)
        }
        return current
    }

    /// ADM's `center_crop_arr` (guided-diffusion, used by DiT, SiT and LightningDiT to prepare
    /// ImageNet): halve with a box filter while the short side is at least 2·`size`, resize with
    /// bicubic so that the short side is `size` (sides rounded half to even), then crop the centre
    /// `size × size`.
    public static func centerCrop(_ image: Image, size: Int) -> Image {
        var current = image
        while min(current.width, current.height) >= 2 * size {
            current = resize(current, width: current.width / 2, height: current.height / 2, filter: .box)
        }
        let scale = Double(size) / Double(min(current.width, current.height))
        let width = Int((Double(current.width) * scale).rounded(.toNearestOrEven))
        let height = Int((Double(current.height) * scale).rounded(.toNearestOrEven))
        current = resize(current, width: width, height: height, filter: .bicubic)
        let top = (current.height - size) / 2, left = (current.width - size) / 2
        var out = [UInt8](repeating: 0, count: size * size * current.channels)
        let rowBytes = size * current.channels
        for y in 0..<size {
            let from = ((top + y) * current.width + left) * current.channels
            out.replaceSubrange((y * rowBytes)..<((y + 1) * rowBytes), with: current.pixels[from..<(from + rowBytes)])
        }
        return Image(width: size, height: size, channels: current.channels, pixels: out)
    }
}
