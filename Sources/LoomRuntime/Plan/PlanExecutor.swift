import CLoomKernels
import Foundation
import LoomDistributed
import LoomIR

/// Runs a `Plan`: one arena and one parameter region allocated up front, then a flat walk over
/// the launches with every operand address resolved when the executor was made. Outputs named
/// `update.<key>` are written back into parameter `<key>` after each run (training steps).
public final class PlanExecutor {
    public let plan: Plan
    public let threads: Int
    let arena: UnsafeMutableRawPointer
    let parameterRegion: UnsafeMutableRawPointer
    /// Resolved memory of every node.
    let refs: [TensorRef]
    /// Launch list: node ids that do work (not leaves bound to memory, not views), in order.
    public let launches: [Int]
    let operands: [[TensorRef]]
    /// (update output, parameter) pairs copied after each run; empty when updates are in place.
    let writeBacks: [(TensorRef, TensorRef)]
    let table: [(name: String, type: TensorType, offset: Int)]
    /// The plan's input nodes, found once (run() binds them every step).
    let inputNodes: [Node]
    /// Called after each launch with (node id, seconds) when set (profiling).
    public var launchTimer: ((Int, Double) -> Void)?
    /// Weights of the linear launches prepared once (plans that do not write their parameters).
    let packedWeights: PackedWeights?
    /// Every launch with its arguments bound (`KernelLibrary.prepare`), indexed like `launches`.
    let prepared: [() throws -> Void]
    /// GEMM implementations chosen for this CPU when the plan was loaded.
    public let kernels: KernelSelection
    /// Operand precision of each launch's GEMMs, indexed like `launches`.
    let precisions: [loom_precision]
    /// Bumped when the parameters are loaded or updated (kernels keep prepared weights by it).
    let parameterVersion: ParameterVersion
    /// Whether a run updates the parameters (training steps: `update.*` outputs), found once.
    let updatesParameters: Bool

    /// Throws when the plan's arena and parameter region together exceed the machine's memory.
    /// `communicator` runs the plan's `allreduce` launches (data-parallel steps); one process by default.
    public init(plan: Plan, threads: Int = Threading.defaultThreads, kernels: KernelSelection = .current,
                communicator: Communicator = SingleProcess()) throws {
        try MachineMemory.check(plan.memory.arenaBytes, plan.memory.parameterBytes, what: "plan \(plan.graph.name)")
        self.plan = plan
        self.threads = threads
        self.kernels = kernels
        arena = .allocate(byteCount: max(plan.memory.arenaBytes, 64), alignment: 64)
        arena.initializeMemory(as: UInt8.self, repeating: 0, count: max(plan.memory.arenaBytes, 64))
        parameterRegion = .allocate(byteCount: max(plan.memory.parameterBytes, 64), alignment: 64)
        parameterRegion.initializeMemory(as: UInt8.self, repeating: 0, count: max(plan.memory.parameterBytes, 64))
        var refs: [TensorRef] = []
        for node in plan.graph.nodes {
            switch plan.locations[node.id] {
            case .arena(let offset): refs.append(TensorRef(arena + offset, node.type))
            case .parameter(let offset), .parameterView(let offset):
                refs.append(TensorRef(parameterRegion + offset, node.type))
            case .alias(let other): refs.append(TensorRef(refs[other].base, node.type))
            }
        }
        self.refs = refs
        let launches = plan.launchedNodeIDs
        self.launches = launches
        let operands = launches.map { id in plan.graph.nodes[id].inputs.map { refs[$0] } }
        self.operands = operands
        let table = plan.parameterTable
        self.table = table
        inputNodes = plan.graph.inputNodes
        let precisions = launches.map { plan.graph.nodes[$0].compute == .bf16 ? LOOM_PRECISION_BF16 : LOOM_PRECISION_F32 }
        self.precisions = precisions
        let packedWeights = PackedWeights(plan: plan, launches: launches, operands: operands,
                                          results: launches.map { refs[$0] }, precisions: precisions,
                                          kernels: kernels, threads: threads)
        self.packedWeights = packedWeights
        let parameterVersion = ParameterVersion()
        self.parameterVersion = parameterVersion
        updatesParameters = plan.graph.outputs.contains { $0.name.hasPrefix(Naming.updatePrefix) }
        prepared = launches.enumerated().map { index, id in
            KernelLibrary.prepare(plan.graph.nodes[id].op, operands[index], refs[id], partition: plan.partitions[id],
                                  packedWeight: packedWeights?.panelsByLaunch[index] ?? nil,
                                  bf16Weight: packedWeights?.bf16ByLaunch[index] ?? nil,
                                  libraryLayer: packedWeights?.libraryByLaunch[index] ?? nil,
                                  communicator: communicator, kernels: kernels, threads: threads,
                                  parameterVersion: parameterVersion)
        }
        let region = parameterRegion
        writeBacks = plan.graph.outputs.compactMap { output in
            guard output.name.hasPrefix(Naming.updatePrefix) else { return nil }
            let key = String(output.name.dropFirst(Naming.updatePrefix.count))
            guard let entry = table.first(where: { $0.name == key }) else { return nil }
            return (refs[output.node], TensorRef(region + entry.offset, entry.type))
        }
        createLibraryKernels()
        if precisions.contains(LOOM_PRECISION_BF16) && kernels.bf16 == .emulated { Self.noteEmulatedBF16(isa: kernels.isa) }
    }

    nonisolated(unsafe) private static var emulationNoted = false

    /// Says once per process that bf16 plans run without bf16 instructions here.
    static func noteEmulatedBF16(isa: ISALevel) {
        guard !emulationNoted else { return }
        emulationNoted = true
        FileHandle.standardError.write(Data(("note: no bf16 GEMM instructions in use (isa \(isa)); "
            + "bf16 plans run fp32 arithmetic on bf16-rounded operands: the same results, without the speed-up\n").utf8))
    }

    /// Creates every oneDNN primitive the plan's GEMMs will use, before the first step: each launch
    /// that multiplies matrices runs once over the arena with its GEMMs in create-only mode (they
    /// compute nothing; the launch's other work runs on whatever the arena holds, which the first
    /// real step overwrites).
    func createLibraryKernels() {
        let usesBF16 = precisions.contains(LOOM_PRECISION_BF16)
        guard kernels.f32 == .onednn || (usesBF16 && kernels.bf16 == .onednn) else { return }
        Threading.setThreads(threads)
        kernels.apply()
        loom_gemm_set_prepare_only(1)
        defer {
            loom_gemm_set_prepare_only(0)
            loom_gemm_set_precision(LOOM_PRECISION_F32)
        }
        for (index, id) in launches.enumerated() where plan.graph.nodes[id].op.isMatrixProduct {
            loom_gemm_set_precision(precisions[index])
            try? prepared[index]()
        }
    }

    deinit {
        arena.deallocate()
        parameterRegion.deallocate()
    }

    /// Loads every parameter and buffer of the plan's table; names, dtypes and shapes must match
    /// exactly (extra tensors are an error too, so a mismatched checkpoint is caught).
    /// `partial`: entries of the table that `tensors` lacks keep their values.
    public func setParameters(_ tensors: [String: HostTensor], ignoringExtra: Bool = false, partial: Bool = false) throws {
        let expected = Set(table.map(\.name))
        var missing: [String] = []
        for entry in table {
            guard let value = tensors[entry.name] else {
                missing.append(entry.name)
                continue
            }
            guard value.type == entry.type else {
                throw RuntimeError("parameter \"\(entry.name)\": the plan expects \(entry.type), found \(value.type)")
            }
            TensorRef(parameterRegion + entry.offset, entry.type).store(value)
        }
        packedWeights?.stale = true
        parameterVersion.value += 1
        if !missing.isEmpty && !partial {
            throw RuntimeError("missing \(missing.count) parameter(s) of the plan's table: \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", …" : "")")
        }
        let extra = Set(tensors.keys).subtracting(expected)
        if !ignoringExtra, !extra.isEmpty {
            throw RuntimeError("\(extra.count) tensor(s) are not in the plan's parameter table: \(extra.sorted().prefix(5).joined(separator: ", "))")
        }
    }

    /// The plan's parameter table: name and type of every parameter, buffer and optimizer state.
    public var parameterEntries: [(name: String, type: TensorType)] { table.map { ($0.name, $0.type) } }

    /// Loads one tensor of the parameter table (for filling the region a tensor at a time,
    /// without holding every value on the host at once).
    public func setParameter(_ name: String, _ value: HostTensor) throws {
        guard let entry = table.first(where: { $0.name == name }) else {
            throw RuntimeError("\"\(name)\" is not in the plan's parameter table")
        }
        guard value.type == entry.type else {
            throw RuntimeError("parameter \"\(name)\": the plan expects \(entry.type), found \(value.type)")
        }
        TensorRef(parameterRegion + entry.offset, entry.type).store(value)
        packedWeights?.stale = true
        parameterVersion.value += 1
    }

    /// Current parameter and buffer values.
    public func parameters() -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for entry in table {
            out[entry.name] = TensorRef(parameterRegion + entry.offset, entry.type).hostTensor()
        }
        return out
    }

    /// Runs the plan once and returns its outputs, except the `update.*` ones, which are already
    /// in the parameter region (read them with `parameters()`). Inputs must match exactly.
    public func run(inputs: [String: HostTensor]) throws -> [String: HostTensor] {
        for node in inputNodes {
            guard case .input(let name) = node.op else { continue }
            guard let value = inputs[name] else { throw RuntimeError("missing input \"\(name)\": expected \(node.type)") }
            guard value.type == node.type else {
                throw RuntimeError("input \"\(name)\": expected \(node.type), found \(value.type)")
            }
            refs[node.id].store(value)
        }
        Threading.setThreads(threads)
        kernels.apply()
        packedWeights?.refresh()
        defer { loom_gemm_set_precision(LOOM_PRECISION_F32) }
        for (index, id) in launches.enumerated() {
            let node = plan.graph.nodes[id]
            let start = launchTimer == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            loom_gemm_set_precision(precisions[index])
            do {
                try prepared[index]()
            } catch let error as RuntimeError {
                let at = node.scope.isEmpty ? "top level" : node.scope
                throw RuntimeError("launch %\(id) (\(node.op.mnemonic)) in \(at): \(error.message)")
            }
            if let launchTimer {
                launchTimer(id, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        var outputs: [String: HostTensor] = [:]
        for output in plan.graph.outputs where !output.name.hasPrefix(Naming.updatePrefix) {
            outputs[output.name] = refs[output.node].hostTensor()
        }
        for (source, target) in writeBacks where source.base != target.base {
            target.base.copyMemory(from: source.base, byteCount: storageBytes(target.type))
        }
        if updatesParameters { parameterVersion.value += 1 }
        return outputs
    }
}
