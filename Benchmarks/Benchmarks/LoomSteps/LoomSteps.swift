import Benchmark
import Foundation
import LoomBenchmarking
import LoomRuntime

/// One benchmark per `BenchmarkCase` (the same cases as `loom bench` and the PyTorch peer):
/// wall clock and peak resident memory of a compiled training or sampler step, plus custom
/// metrics for achieved GFLOP/s and the fraction of `cblas_sgemm`'s GFLOP/s on the plan's own
/// GEMM shapes (measured once per benchmark, in this process). `LOOM_THREADS` sets the threads
/// (default: all cores); `LOOM_BENCH_CASES` (comma-separated) picks cases.
let benchmarks: @Sendable () -> Void = {
    let threads = Threading.defaultThreads
    let wanted = ProcessInfo.processInfo.environment["LOOM_BENCH_CASES"].map { Set($0.split(separator: ",").map(String.init)) }
    let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
    let roofline = BenchmarkMetric.custom("% of sgemm", polarity: .prefersLarger, useScalingFactor: false)
    for benchmarkCase in BenchmarkCase.all where wanted?.contains(benchmarkCase.name) ?? true {
        let configuration = Benchmark.Configuration(
            metrics: [.wallClock, .peakMemoryResident, .mallocCountTotal, gflops],
            timeUnits: .milliseconds, warmupIterations: 1, scalingFactor: .one,
            maxDuration: .seconds(60), maxIterations: 5)
        Benchmark(benchmarkCase.name, configuration: configuration) { (benchmark: Benchmark, step: StepBenchmark) in
            let start = DispatchTime.now().uptimeNanoseconds
            benchmark.startMeasurement()
            try step.step()
            benchmark.stopMeasurement()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            benchmark.measurement(gflops, Int((step.stepFLOPs / seconds / 1e9).rounded()))
        } setup: {
            try StepBenchmark(benchmarkCase, threads: threads)
        }
        Benchmark(benchmarkCase.name + " roofline",
                  configuration: .init(metrics: [roofline], maxIterations: 1)) { (benchmark: Benchmark, step: StepBenchmark) in
            let result = try step.measure(repeats: 3, warmup: 0, roofline: true)
            benchmark.measurement(roofline, Int((100 * (result.rooflineFraction ?? 0)).rounded()))
        } setup: {
            try StepBenchmark(benchmarkCase, threads: threads)
        }
    }
}
