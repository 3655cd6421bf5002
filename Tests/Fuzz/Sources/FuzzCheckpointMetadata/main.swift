import FuzzDriver
import LoomTraining

// Fuzz target: libFuzzer over `LoaderProbes.checkpointMetadata`.
runFuzzer(LoaderProbes.checkpointMetadata)
