// oneDNN's C API (Debian `libdnnl-dev`, which ships no pkg-config file: headers and library are
// on the default search paths).
#include <oneapi/dnnl/dnnl.h>
