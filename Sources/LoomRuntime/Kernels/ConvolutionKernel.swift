import CLoomKernels
import Foundation
import LoomIR

/// One `conv2d` launch: its geometry, and on oneDNN the primitive with the weight reordered into
/// the layout it prefers. A plan makes one per launch and reorders the weight again only when the
/// parameters changed (`version`); the reference executor makes one per call.
final class ConvolutionLaunch {
    let shape: loom_conv_shape
    let library: OpaquePointer?
    private var packed: UnsafeMutableRawPointer?
    private var packedVersion = -1

    init(_ x: TensorRef, _ w: TensorRef, _ y: TensorRef, stride: Int, padding: [Int], provider: ConvolutionProvider,
         threads: Int) {
        shape = loom_conv_shape(n: Int64(x.shape[0]), c: Int64(x.shape[1]), h: Int64(x.shape[2]), w: Int64(x.shape[3]),
                                o: Int64(w.shape[0]), kh: Int64(w.shape[2]), kw: Int64(w.shape[3]), stride: Int64(stride),
                                pad_top: Int64(padding[0]), pad_left: Int64(padding[1]), pad_bottom: Int64(padding[2]),
                                pad_right: Int64(padding[3]), oh: Int64(y.shape[2]), ow: Int64(y.shape[3]))
        var geometry = shape
        library = provider != .own && y.count > 0 ? loom_onednn_conv_create(&geometry, Int32(threads), provider == .winograd ? 1 : 0) : nil
    }

    deinit {
        packed?.deallocate()
        if let library { loom_onednn_conv_destroy(library) }
    }

    /// Working memory of one call beyond its operands (oneDNN's scratchpad, Winograd's blocked copies).
    var scratchBytes: Int { library.map { Int(loom_onednn_conv_scratch_bytes($0)) } ?? 0 }

    /// The implementation that runs it ("own im2col+gemm" or oneDNN's name for its kernel).
    var implementation: String {
        library.map { "onednn " + String(cString: loom_onednn_conv_impl($0)) } ?? "own im2col+gemm"
    }

    /// y = conv(x, w) + bias. `version` names the parameter values `w` holds (the weight is
    /// reordered again when it differs from the last call's; nil: always).
    func run(_ x: TensorRef, _ w: TensorRef, _ bias: TensorRef, _ y: TensorRef, version: Int?) throws {
        guard y.count > 0 else { return }
        if let library {
            if packed == nil {
                packed = .allocate(byteCount: max(Int(loom_onednn_conv_weight_bytes(library)), 64), alignment: 64)
            }
            if version == nil || version != packedVersion {
                guard loom_onednn_conv_pack(library, w.floats, packed) != 0 else {
                    throw RuntimeError("conv2d: oneDNN could not reorder the weight \(w.type)")
                }
                packedVersion = version ?? -1
            }
            if loom_onednn_conv_run(library, x.floats, packed, bias.floats, y.floats) != 0 { return }
        }
        var geometry = shape
        guard loom_conv2d_own(&geometry, x.floats, w.floats, bias.floats, y.floats) != 0 else {
            throw RuntimeError("conv2d: out of memory for the unfolded input of \(x.type)")
        }
    }
}

/// The parameter values a plan holds: bumped whenever they are loaded or updated, so that kernels
/// holding a prepared copy of a weight know when to prepare it again.
final class ParameterVersion {
    var value = 0
}

extension KernelLibrary {
    /// An unprepared `conv2d` (the reference executor): always Loom's own im2col + GEMM, so that the
    /// reference stays independent of the library kernel a plan runs.
    static func convolution(_ x: [TensorRef], _ y: TensorRef, stride: Int, padding: [Int]) throws {
        let launch = ConvolutionLaunch(x[0], x[1], y, stride: stride, padding: padding, provider: .own,
                                       threads: Int(loom_get_num_threads()))
        try launch.run(x[0], x[1], x[2], y, version: nil)
    }
}
