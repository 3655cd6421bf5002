import ArgumentParser
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomGraphs
import LoomIR
import LoomSampling
import LoomTraining

/// `loom params`: the parameter table of a zoo model.
struct ParamsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "params", abstract: "Print a zoo model's parameter table (name, shape, count) and total.")

    @OptionGroup var model: ModelOptions

    func run() throws {
        let config = try model.config()
        let graph = try DiffusionTransformer(config).forwardGraph(batch: 1)
        let rows = graph.parameterNodes.compactMap { node -> (String, String, Int, String)? in
            guard case .parameter(let name, let initializer, let trainable) = node.op else { return nil }
            let kind: String
            switch initializer {
            case .ropeCos, .ropeSin: kind = "buffer"
            default: kind = trainable ? "" : "frozen"
            }
            return (name, describeShape(node.type.shape), node.type.elementCount, kind)
        }
        let width = max(rows.map(\.0.count).max() ?? 0, 4)
        let shapeWidth = max(rows.map(\.1.count).max() ?? 0, 5)
        print("name".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
              + "shape".padding(toLength: shapeWidth, withPad: " ", startingAt: 0) + "  " + "count")
        for (name, shape, count, kind) in rows {
            print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                  + shape.padding(toLength: shapeWidth, withPad: " ", startingAt: 0) + "  "
                  + grouped(count) + (kind.isEmpty ? "" : "  (\(kind))"))
        }
        let trainable = graph.nodes.reduce(0) { total, node in
            if case .parameter(_, _, true) = node.op { return total + node.type.elementCount }
            return total
        }
        print("\(config.displayName): \(grouped(graph.pytorchParameterCount)) parameters "
              + "(\(grouped(trainable)) trainable; pos_embed counted, RoPE buffers not)")
    }
}

/// 675129632 → "675,129,632".
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}
