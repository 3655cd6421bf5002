import FuzzDriver
import LoomDiffusion

// Fuzz target: libFuzzer over `LoaderProbes.idx`.
runFuzzer(LoaderProbes.idx)
