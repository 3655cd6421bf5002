import FuzzDriver
import LoomTraining

// Fuzz target: libFuzzer over `LoaderProbes.safeTensors`.
runFuzzer(LoaderProbes.safeTensors)
