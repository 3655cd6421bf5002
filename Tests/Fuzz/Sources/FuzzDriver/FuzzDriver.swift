import Foundation

// The shared libFuzzer driver of the fuzz targets: each target's main hands its probe to
// `runFuzzer`, which runs libFuzzer's driver over it (built with -sanitize=fuzzer by scripts/fuzz.sh).

nonisolated(unsafe) private var currentProbe: (([UInt8]) -> Void)?

/// libFuzzer's entry point: the input bytes through the target's probe.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    currentProbe?(data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// Runs libFuzzer with the process's arguments over `probe` and exits with its status.
public func runFuzzer(_ probe: @escaping ([UInt8]) -> Void) -> Never {
    currentProbe = probe
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(runFuzzerDriver(&argc, &argv, fuzzOneInput))
}
