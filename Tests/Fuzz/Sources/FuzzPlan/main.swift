import FuzzDriver
import LoomTraining

// Fuzz target: libFuzzer over `LoaderProbes.plan`.
runFuzzer(LoaderProbes.plan)
