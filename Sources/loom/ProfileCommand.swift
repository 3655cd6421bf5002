import ArgumentParser
import Foundation
import LoomBenchmarking
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTraining

/// `loom profile`: per-block parameters, MACs/FLOPs, saved activations, peak memory and measured
/// time of a compiled plan, plus a memory timeline.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Profile a compiled step per block: parameters, forward/backward MACs and FLOPs, saved activations, peak memory, measured time.",
        discussion: "Profiles a zoo model (same flags as `loom compile`) or an existing plan file (--plan). FLOPs = 2·MACs for matrix products; the DiT paper's \"GFLOPs\" are GMACs.")

    @OptionGroup var compile: CompileSelection

    @Option(help: "Profile this plan file instead of compiling a zoo model.")
    var plan: String?

    @Option(help: "Timed runs (after one warm-up run).")
    var runs = 3

    @Option(help: "Threads (default: LOOM_THREADS or all cores).")
    var threads: Int?

    @Flag(help: "Print JSON instead of the table.")
    var json = false

    func validate() throws {
        try FlagCheck.count(runs, "--runs", min: 0, max: 1_000_000)
        if let threads { try FlagCheck.count(threads, "--threads", max: Threading.maxThreads) }
    }

    @Option(help: "Write the memory timeline (arena bytes in use per launch) as CSV.")
    var timelineCsv: String?

    @Option(help: "Write the memory timeline as an SVG plot.")
    var timelineSvg: String?

    @Option(help: "Also write the table (or JSON) to this file.")
    var report: String?

    func run() throws {
        let compiled = try plan.map { try Plan.read(path: $0) } ?? compile.compile()
        let (_, requests, memory) = try PlanLowering.analyze(compiled.graph)
        var kindSeconds: [String: Double] = [:]
        var kindFLOPs: [String: Double] = [:]
        let attribution = BlockAttribution(graph: compiled.graph)
        var profile = BlockProfile(graph: compiled.graph, attribution: attribution)

        let points = memory.timeline(requests: requests)
        var peaks: [String: Int] = [:]
        for point in points where point.launch < compiled.graph.nodes.count {
            let block = attribution.labels[point.launch]
            peaks[block] = max(peaks[block] ?? 0, point.bytes)
        }
        for (block, bytes) in peaks { profile.setPeakTransient(block: block, bytes: bytes) }

        if runs > 0 {
            let executor = try PlanExecutor(plan: compiled, threads: try Threading.resolve(threads))
            if !json { print("kernels: \(executor.kernels) (plan precision \(compiled.precision.rawValue))") }
            try executor.setParameters(SyntheticInputs.parameters(compiled.graph))
            let inputs = SyntheticInputs.inputs(compiled.graph)
            _ = try executor.run(inputs: inputs)
            var seconds = [Double](repeating: 0, count: compiled.graph.nodes.count)
            executor.launchTimer = { id, s in seconds[id] += s }
            for _ in 0..<runs { _ = try executor.run(inputs: inputs) }
            var perBlock: [String: Double] = [:]
            for (id, s) in seconds.enumerated() where s > 0 {
                perBlock[attribution.labels[id], default: 0] += s
                kindSeconds[kernelKind(compiled.graph.nodes[id].op), default: 0] += s / Double(runs)
            }
            for (block, s) in perBlock { profile.addMeasurement(block: block, seconds: s / Double(runs)) }
            for node in compiled.graph.nodes {
                kindFLOPs[kernelKind(node.op), default: 0] += Double(CostModel.cost(of: node, in: compiled.graph).flops)
            }
        }
        let labels = points.map { $0.launch < attribution.labels.count ? attribution.labels[$0.launch] : "end" }
        let timeline = MemoryTimeline(points: points, labels: labels, title: "\(compiled.graph.name): arena bytes in use")
        if let timelineCsv { try timeline.csv().write(toFile: timelineCsv, atomically: true, encoding: .utf8) }
        if let timelineSvg { try timeline.svg(width: 960, height: 360).write(toFile: timelineSvg, atomically: true, encoding: .utf8) }
        var text: String
        if json {
            text = profile.json()
        } else {
            let m = compiled.memory
            let mib = { (bytes: Int) in String(format: "%.2f MiB", Double(bytes) / 1_048_576) }
            text = profile.table() + "\n"
                + "arena \(mib(m.arenaBytes)), lower bound \(mib(m.lowerBound)), sum of values \(mib(m.totalRequested)); "
                + "parameters and optimizer state \(mib(m.parameterBytes)); time per block averaged over \(runs) run(s)"
        }
        if !json && !kindSeconds.isEmpty {
            text += "\n\ntime per kernel kind (ms per run, share, GFLOP/s):"
            let total = kindSeconds.values.reduce(0, +)
            for (kind, seconds) in kindSeconds.sorted(by: { $0.value > $1.value }) {
                let rate = seconds > 0 ? (kindFLOPs[kind] ?? 0) / seconds / 1e9 : 0
                text += String(format: "\n  %-18@ %9.2f ms  %5.1f%%  %7.1f", kind as NSString, seconds * 1000,
                               100 * seconds / max(total, 1e-12), rate)
            }
        }
        print(text)
        if let report { try (text + "\n").write(toFile: report, atomically: true, encoding: .utf8) }
    }
}

/// A launch's kernel family for the per-kind breakdown (GEMMs split by shape class).
func kernelKind(_ op: Op) -> String {
    switch op {
    case .matmul(let ta, let tb): return "matmul" + (ta ? "ᵀ" : "") + (tb ? "·ᵀ" : "")
    case .fused(let kernel): return kernel.mnemonic
    case .unary, .affine, .binary: return "elementwise"
    default: return op.mnemonic
    }
}
