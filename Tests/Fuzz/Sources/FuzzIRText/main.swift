import FuzzDriver
import LoomTraining

// Fuzz target: libFuzzer over `LoaderProbes.irText`.
runFuzzer(LoaderProbes.irText)
