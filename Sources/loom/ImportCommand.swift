import ArgumentParser
import Foundation
import LoomData
import LoomImport
import LoomIR
import LoomRuntime

/// `loom import`: a PyTorch `.pt` checkpoint to an official-key safetensors file, read by a
/// restricted unpickler that executes nothing.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a PyTorch checkpoint (.pt, torch.save's zip format) into safetensors, executing nothing.",
        discussion: """
            The pickle is read by a restricted unpickler: only OrderedDict, the tensor rebuild functions and
            float32/float16/bfloat16/float64/int32/int64 storages are understood (the policy of
            torch.load(weights_only=True)); any other global or opcode is refused with its name. Objects of
            other classes that lie outside the imported key (e.g. argparse.Namespace under 'args') are kept
            as inert names. Half and bfloat16 tensors become float32 exactly. The output keeps the official
            keys and records the model configuration the shapes imply (metadata "loom.import.config").
            """)

    @Argument(help: "The PyTorch checkpoint.") var checkpoint: String
    @Option(name: .shortAndLong, help: "The safetensors file to write.") var output: String
    @Option(help: "Top-level entry of a training checkpoint to import (e.g. ema or model); default: the file must be a state dict.")
    var key: String?

    func validate() throws {
        if SameFile.check(checkpoint, output) { throw ValidationError("-o \(output) is the input checkpoint; choose another output") }
    }

    func run() throws {
        let file: TorchCheckpoint
        let tensors: [(String, HostTensor)]
        do {
            file = try TorchCheckpoint(path: checkpoint)
            print("\(checkpoint):")
            for line in file.report() { print("  \(line)") }
            tensors = try file.stateDict(key: key)
        } catch let error as DiffusionError {
            throw RuntimeError(error.message)
        }
        let inferred = InferredConfig(tensors: tensors)
        print("imported \(tensors.count) tensors\(key.map { " from '\($0)'" } ?? "") (\(tensors.reduce(0) { $0 + $1.1.elementCount }) elements)")
        print("  inferred: \(inferred.summary)")
        for note in inferred.notes { print("  note: \(note)") }
        try SafeTensors.write(tensors, metadata: [Naming.importedConfigKey: inferred.json()], to: output)
        print("wrote \(output)")
    }
}
