import FuzzDriver
import LoomImport

// Fuzz target: libFuzzer over `ImportProbes.torchCheckpoint`.
runFuzzer(ImportProbes.torchCheckpoint)
