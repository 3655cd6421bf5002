// LoomCompiler
