#include <mpi.h>

/* Open MPI spells its handles as macros over addresses of globals, which Swift cannot import:
   these return them as values. */
static inline MPI_Comm loom_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype loom_mpi_float(void) { return MPI_FLOAT; }
static inline int loom_mpi_success(void) { return MPI_SUCCESS; }
static inline int loom_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
