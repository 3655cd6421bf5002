import LoomDistributed
import LoomIR

extension KernelLibrary {
    /// y = x₀ | x₁ | … (each operand flattened, in order): the `allreduce` of one process.
    static func concatenate(_ x: [TensorRef], into y: TensorRef) {
        var offset = 0
        for operand in x {
            if operand.floats != y.floats + offset { (y.floats + offset).update(from: operand.floats, count: operand.count) }
            offset += operand.count
        }
    }

    /// `allreduce` through `communicator`: the operands gathered into y, then y replaced by its
    /// mean over the ranks (fixed rank order, so every rank and every rerun gets the same bits).
    static func allReduce(_ x: [TensorRef], _ y: TensorRef, communicator: Communicator) throws {
        concatenate(x, into: y)
        do {
            try communicator.allReduceMean(UnsafeMutableBufferPointer(start: y.floats, count: y.count))
        } catch let error as DistributedError {
            throw RuntimeError(error.message)
        }
    }
}
