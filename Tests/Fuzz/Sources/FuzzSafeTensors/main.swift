import FuzzDriver
import LoomDiffusion

// Fuzz target: libFuzzer over `LoaderProbes.safeTensors`.
runFuzzer(LoaderProbes.safeTensors)
