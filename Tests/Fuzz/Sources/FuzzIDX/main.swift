import FuzzDriver
import LoomTraining

// Fuzz target: libFuzzer over `LoaderProbes.idx`.
runFuzzer(LoaderProbes.idx)
