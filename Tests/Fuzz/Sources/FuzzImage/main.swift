import FuzzDriver
import LoomTraining

// Fuzz target: libFuzzer over `LoaderProbes.image`.
runFuzzer(LoaderProbes.image)
