// Umbrella header of Loom's C kernels.
#include "loom_kernels.h"
#include "loom_random.h"
#include "loom_signals.h"
#include "loom_memory.h"
#include "loom_fused.h"
#include "loom_gemm.h"
#include "loom_conv.h"
