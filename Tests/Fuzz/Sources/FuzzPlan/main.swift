import FuzzDriver
import LoomDiffusion

// Fuzz target: libFuzzer over `LoaderProbes.plan`.
runFuzzer(LoaderProbes.plan)
