import CLoomKernels
import Foundation

/// The instruction-set levels Loom chooses kernels for, lowest first.
public enum ISALevel: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
    /// AVX2 + FMA (x86-64-v3), the floor every plan runs on.
    case avx2
    /// AVX-512 F/BW/VL/DQ, with AVX512-BF16 where the CPU has it.
    case avx512
    /// AMX tiles with bf16.
    case amx

    public static func < (a: ISALevel, b: ISALevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["avx2", "avx512", "amx"][rawValue] }

    /// Parses a `LOOM_ISA` value.
    public init?(name: String) {
        guard let level = ISALevel.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = level
    }
}

/// What the CPU offers, as the OS lets it be used.
public struct CPUFeatures: Equatable, Sendable {
    public var avx2FMA: Bool
    public var avx512: Bool
    public var avx512BF16: Bool
    public var amxBF16: Bool

    public static let detected: CPUFeatures = {
        let f = loom_detect_cpu()
        return CPUFeatures(avx2FMA: f.avx2_fma != 0, avx512: f.avx512f != 0, avx512BF16: f.avx512_bf16 != 0,
                           amxBF16: f.amx_bf16 != 0)
    }()

    /// The highest level the CPU has.
    public var level: ISALevel { amxBF16 ? .amx : avx512 ? .avx512 : .avx2 }

    /// "avx2 fma avx512 avx512_bf16", the features present.
    public var summary: String {
        [(avx2FMA, "avx2 fma"), (avx512, "avx512"), (avx512BF16, "avx512_bf16"), (amxBF16, "amx_bf16")]
            .filter(\.0).map(\.1).joined(separator: " ")
    }
}

/// Which kernel runs `conv2d` (Docs/performance.md has the measurements behind the default).
public enum ConvolutionProvider: String, Sendable, CaseIterable {
    /// oneDNN, with its Winograd F(4×4, 3×3) kernel for 3×3 stride-1 convolutions where the CPU has
    /// one (AVX-512), the direct kernel elsewhere. The default: fp32 arithmetic, rounded differently
    /// (within 1e-5 of the direct sum on the VAE goldens).
    case winograd
    /// oneDNN's direct convolution on NCHW (its GEMM-based kernel on plain layouts).
    case onednn
    /// Loom's own im2col + GEMM (the reference executor's path).
    case own
}

/// Which GEMM implementation runs each precision on this machine, chosen when a plan is loaded
/// from the CPU's features, capped by `LOOM_ISA` (`avx2|avx512|amx`); `LOOM_GEMM=own|onednn`
/// overrides the fp32 choice and `LOOM_GEMM_BF16=emulated` the bf16 one, for A/B measurements
/// (bf16 on oneDNN is never forced onto a CPU without bf16 instructions). Plans are portable: nothing of this is stored
/// in them.
public struct KernelSelection: Equatable, Sendable, CustomStringConvertible {
    /// The fp32 GEMM implementation.
    public enum Provider: String, Sendable { case own, onednn }
    /// How bf16 GEMMs run.
    public enum BF16Mode: String, Sendable {
        /// oneDNN's kernels on bf16 instructions (AVX512-BF16 or AMX).
        case onednn
        /// fp32 arithmetic on operands rounded to bf16 (CPUs without bf16 instructions).
        case emulated
    }

    public var isa: ISALevel
    public var f32: Provider
    public var bf16: BF16Mode
    /// The convolution implementation (`LOOM_CONV=winograd|onednn|own`).
    public var conv: ConvolutionProvider
    /// Set when LOOM_ISA asked for more than the CPU has.
    public var note: String?

    public init(isa: ISALevel, f32: Provider, bf16: BF16Mode, conv: ConvolutionProvider = .winograd, note: String? = nil) {
        self.isa = isa
        self.f32 = f32
        self.bf16 = bf16
        self.conv = conv
        self.note = note
    }

    /// The choice for `features` capped at `cap`. Measured (Docs/performance.md): on AVX2 Loom's
    /// own GEMM and oneDNN's are level, so the own kernel stays (bit-identical at any team size);
    /// with AVX-512 oneDNN is level on large shapes and faster on the small ones (attention heads,
    /// batch 1); oneDNN's bf16 without bf16 instructions is an emulation slower than fp32, so such
    /// CPUs round the operands and run the fp32 kernel.
    public static func choose(features: CPUFeatures, cap: ISALevel?, f32Override: Provider? = nil,
                              bf16Override: BF16Mode? = nil) -> KernelSelection {
        var isa = features.level
        var note: String?
        if let cap {
            if cap > isa { note = "LOOM_ISA=\(cap) asks for more than this CPU has; using \(isa)" }
            isa = min(isa, cap)
        }
        let bf16Native = isa == .amx || (isa == .avx512 && features.avx512BF16)
        let f32 = f32Override ?? (isa >= .avx512 ? .onednn : .own)
        let bf16 = bf16Override == .emulated || !bf16Native ? BF16Mode.emulated : .onednn
        return KernelSelection(isa: isa, f32: f32, bf16: bf16, note: note)
    }

    /// The process's selection, from the CPU and the environment (made once: oneDNN's ISA cap can
    /// be set only before its first primitive). An unknown `LOOM_ISA` or `LOOM_GEMM` is reported by
    /// `validateEnvironment` (the CLI exits on it); here it is ignored.
    public static let current: KernelSelection = {
        let environment = ProcessInfo.processInfo.environment
        let cap = environment["LOOM_ISA"].flatMap(ISALevel.init(name:))
        let override = environment["LOOM_GEMM"].flatMap { Provider(rawValue: $0.lowercased()) }
        let bf16Override = environment["LOOM_GEMM_BF16"].flatMap { BF16Mode(rawValue: $0.lowercased()) }
        var selection = choose(features: .detected, cap: cap, f32Override: override, bf16Override: bf16Override)
        selection.conv = environment["LOOM_CONV"].flatMap { ConvolutionProvider(rawValue: $0.lowercased()) } ?? .winograd
        if selection.isa == .amx { _ = loom_request_amx_permission() }
        _ = loom_onednn_cap_isa(Int32(selection.isa.rawValue))
        return selection
    }()

    /// Throws on a `LOOM_ISA` or `LOOM_GEMM` value Loom does not know, naming the variable.
    public static func validateEnvironment() throws {
        let environment = ProcessInfo.processInfo.environment
        if let value = environment["LOOM_ISA"], ISALevel(name: value) == nil {
            throw RuntimeError("LOOM_ISA=\(value) is not an instruction-set level (avx2, avx512 or amx)")
        }
        if let value = environment["LOOM_GEMM"], Provider(rawValue: value.lowercased()) == nil {
            throw RuntimeError("LOOM_GEMM=\(value) is not a GEMM implementation (own or onednn)")
        }
        if let value = environment["LOOM_CONV"], ConvolutionProvider(rawValue: value.lowercased()) == nil {
            throw RuntimeError("LOOM_CONV=\(value) is not a convolution implementation (winograd, onednn or own)")
        }
        if let value = environment["LOOM_GEMM_BF16"], BF16Mode(rawValue: value.lowercased()) == nil {
            throw RuntimeError("LOOM_GEMM_BF16=\(value) is not a bf16 GEMM mode (onednn or emulated)")
        }
    }

    /// Makes this the implementation of every GEMM, and the vector width of the elementwise, row
    /// and bf16-conversion kernels, from now on (plans call it before each run).
    public func apply() {
        loom_gemm_configure(f32 == .onednn ? LOOM_GEMM_ONEDNN : LOOM_GEMM_OWN,
                            bf16 == .onednn ? LOOM_BF16_ONEDNN : LOOM_BF16_EMULATED)
        _ = loom_set_vector_isa(isa >= .avx512 ? 1 : 0)
    }

    /// Kernel names for one representative shape ([256, 384] · [384, 1152]), as oneDNN reports them.
    public var fp32Kernel: String {
        f32 == .own ? "own avx2 4x24" : "onednn " + (Self.onednnName(bf16: false) ?? "unavailable (own avx2 4x24)")
    }

    public var bf16Kernel: String {
        bf16 == .emulated ? "emulated (bf16-rounded operands, fp32 \(fp32Kernel))"
            : "onednn " + (Self.onednnName(bf16: true) ?? "unavailable")
    }

    private static func onednnName(bf16: Bool) -> String? {
        _ = current  // the ISA cap precedes the first primitive
        let name = String(cString: loom_onednn_gemm_impl(256, 1152, 384, bf16 ? 1 : 0))
        return name.isEmpty ? nil : name
    }

    /// One line for `run`, `bench` and `profile`: the ISA, each precision's GEMM and the vector width
    /// of the kernels around them.
    public var description: String {
        "isa \(isa) (cpu: \(CPUFeatures.detected.summary)); gemm fp32: \(fp32Kernel); gemm bf16: \(bf16Kernel); "
            + "elementwise \(isa >= .avx512 ? "avx512" : "avx2")" + (note.map { "; \($0)" } ?? "")
    }
}
