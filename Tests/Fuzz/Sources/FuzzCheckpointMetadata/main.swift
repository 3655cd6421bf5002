import FuzzDriver
import LoomDiffusion

// Fuzz target: libFuzzer over `LoaderProbes.checkpointMetadata`.
runFuzzer(LoaderProbes.checkpointMetadata)
