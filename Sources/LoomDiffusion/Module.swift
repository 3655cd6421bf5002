// LoomDiffusion
