import FuzzDriver
import LoomImport

// Fuzz target: libFuzzer over `ImportProbes.vaeWeights`.
runFuzzer(ImportProbes.vaeWeights)
