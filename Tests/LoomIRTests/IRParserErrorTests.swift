import LoomTestSupport
import XCTest
@testable import LoomIR

/// Text the parser refuses: each error names the file, the line and the fault.
final class IRParserErrorTests: XCTestCase {
    /// Asserts parsing `text` fails with a message containing every fragment.
    private func assertParseError(_ text: String, _ fragments: [String],
                                  file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(IRError.self, mentioning: fragments, file: file, line: line) {
            IRPrinter.print(try IRParser.parse(text, source: "bad.loomir"))
        }
    }

    private let header = "graph g {\n  %0 = input \"x\" : f32[2,3]\n"

    func testUnknownOp() {
        assertParseError(header + "  %1 = frobnicate(%0) : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "unknown op", "'frobnicate'"])
    }

    func testBadTypeAnnotation() {
        assertParseError(header + "  %1 = silu(%0) : f33[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "bad type annotation", "'f33'"])
        assertParseError(header + "  %1 = silu(%0) : f32[2,x]\n  return\n}\n",
                         ["bad.loomir:3:", "bad type annotation", "'x'"])
        assertParseError(header + "  %1 = silu(%0) : f32(2,3)\n  return\n}\n",
                         ["bad.loomir:3:", "bad type annotation", "'('"])
        assertParseError(header + "  %1 = silu(%0)\n  return\n}\n", ["bad.loomir:3:", "':'", "end of line"])
    }

    func testUndefinedOperand() {
        assertParseError(header + "  %1 = add(%0, %7) : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "undefined operand", "'%7'"])
        assertParseError(header + "  %1 = silu(%1) : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "undefined operand", "'%1'"])
        assertParseError(header + "  return y = %4\n}\n", ["bad.loomir:3:", "'%4'"])
        assertParseError(header + "  %1 = silu(%0) : f32[2,3]  # <- %9\n  return\n}\n",
                         ["bad.loomir:3:", "origin", "'%9'"])
    }

    func testBadAttribute() {
        assertParseError(header + "  %1 = slice(%0) axis=one start=0 end=1 : f32[2,1]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "axis=one"])
        assertParseError(header + "  %1 = silu(%0) frob=1 : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "'frob'"])
        assertParseError(header + "  %1 = matmul(%0, %0) transpose_b=yes : f32[2,2]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "transpose_b=yes"])
        assertParseError(header + "  %1 = reduce_sum(%0) axes=1 : f32[2]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "axes=1"])
        assertParseError(header + "  %1 = concat(%0, %0) : f32[4,3]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "'axis='"])
        assertParseError(header + "  %1 = param \"w\" init=glorot(1,2) : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "init=glorot(1,2)"])
        assertParseError(header + "  %1 = cast(%0) to=f16 : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "to=f16"])
        assertParseError(header + "  %1 = iota axis=0 axis=1 : f32[2,3]\n  return\n}\n",
                         ["bad.loomir:3:", "bad attribute", "'axis'"])
    }

    func testStructuralErrors() {
        assertParseError(header + "  %2 = silu(%0) : f32[2,3]\n  return\n}\n", ["bad.loomir:3:", "'%2'", "%1"])
        assertParseError(header + "  return\n", ["bad.loomir:", "missing closing '}'"])
        assertParseError(header + "  return\n}\n%1 = silu(%0) : f32[2,3]\n", ["bad.loomir:5:", "'%1'"])
        assertParseError("grph g {\n}\n", ["bad.loomir:1:", "'grph'"])
        assertParseError(header + "  %1 = input \"unterminated : f32[2]\n  return\n}\n",
                         ["bad.loomir:3:", "unterminated string"])
        assertParseError(header + "  %1 = constant abc : f32[]\n  return\n}\n", ["bad.loomir:3:", "'abc'"])
        assertParseError(header + "  %1 = silu(%0) : f32[2,3] extra\n  return\n}\n", ["bad.loomir:3:", "'extra'"])
    }

    func testVerifierErrorsCarryTheLine() {
        // Declared type disagrees with the op rules: caught by the Verifier, reported at the node's line.
        assertParseError(header + "\n  %1 = silu(%0) : f32[3,2]  # blocks.0\n  return y = %1\n}\n",
                         ["bad.loomir:4:", "node %1 (silu) in blocks.0", "declared type f32[3,2]",
                          "f32[2,3]"])
        assertParseError(header + "  %1 = param \"x\" init=zeros : i64[2]\n  return\n}\n",
                         ["bad.loomir:3:", "parameters must be f32"])
        assertParseError(header + "  return y = %0, y = %0\n}\n", ["bad.loomir:3:", "output \"y\" is declared twice"])
    }
}
