import FuzzDriver
import LoomDiffusion

// Fuzz target: libFuzzer over `LoaderProbes.irText`.
runFuzzer(LoaderProbes.irText)
