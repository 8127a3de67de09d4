/* Open MPI, opened when first used instead of linked (see mpi_loader.h).
 *
 * Open MPI's handles are pointers to objects libmpi exports (MPI_COMM_WORLD is
 * &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float, MPI_SUM &ompi_mpi_op_sum), so they are
 * looked up with dlsym like the functions. The types below are Open MPI's ABI (handles and
 * requests are pointers, MPI_STATUS_IGNORE is NULL, MPI_IN_PLACE is (void *) 1); where the
 * headers are installed the build checks them against mpi.h. MPICH, whose handles are
 * integers, is refused by name when loaded. */
#include "mpi_loader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *handle;  /* MPI_Comm, MPI_Datatype, MPI_Op, MPI_Request: pointers in Open MPI */
#define IN_PLACE ((void *) 1)
#define STATUS_IGNORE ((void *) 0)
#define THREAD_SERIALIZED 2

#if __has_include(<mpi/mpi.h>)
#include <mpi/mpi.h>
_Static_assert(sizeof(MPI_Comm) == sizeof(handle) && sizeof(MPI_Request) == sizeof(handle),
               "Open MPI handles are pointers");
_Static_assert(MPI_THREAD_SERIALIZED == THREAD_SERIALIZED, "MPI_THREAD_SERIALIZED");
#endif

static const char *const default_soname = "libmpi.so.40";

static struct {
  int (*init_thread)(int *, char ***, int, int *);
  int (*initialized)(int *);
  int (*query_thread)(int *);
  int (*finalize)(void);
  int (*abort)(handle, int);
  int (*comm_rank)(handle, int *);
  int (*comm_size)(handle, int *);
  int (*allreduce)(const void *, void *, int, handle, handle, handle);
  int (*iallreduce)(const void *, void *, int, handle, handle, handle, handle *);
  int (*test)(handle *, int *, void *);
  int (*wait)(handle *, void *);
  int (*allgather)(const void *, int, handle, void *, int, handle, handle);
  int (*barrier)(handle);
  int (*library_version)(char *, int *);
  handle world, f32, f64, byte, sum;
} mpi;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[512];
static char version[512];

static void load(void) {
  /* GLASSBOX_MPI_LIBRARY names another copy (an Open MPI installed outside the system's
   * library path). RTLD_GLOBAL: Open MPI's components (opened by libmpi itself) resolve
   * libmpi's symbols. */
  const char *chosen = getenv("GLASSBOX_MPI_LIBRARY");
  const char *soname = chosen && *chosen ? chosen : default_soname;
  void *h = dlopen(soname, RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    const char *why = dlerror();
    snprintf(failure, sizeof failure,
             "cannot load Open MPI's %s (%s); install libopenmpi-dev and openmpi-bin (tools/setup)", soname,
             why ? why : "not found");
    return;
  }
  struct { const char *name; void **slot; } symbols[] = {
    {"MPI_Init_thread", (void **) &mpi.init_thread}, {"MPI_Initialized", (void **) &mpi.initialized},
    {"MPI_Query_thread", (void **) &mpi.query_thread},
    {"MPI_Finalize", (void **) &mpi.finalize}, {"MPI_Abort", (void **) &mpi.abort},
    {"MPI_Comm_rank", (void **) &mpi.comm_rank}, {"MPI_Comm_size", (void **) &mpi.comm_size},
    {"MPI_Allreduce", (void **) &mpi.allreduce}, {"MPI_Iallreduce", (void **) &mpi.iallreduce},
    {"MPI_Test", (void **) &mpi.test}, {"MPI_Wait", (void **) &mpi.wait},
    {"MPI_Allgather", (void **) &mpi.allgather}, {"MPI_Barrier", (void **) &mpi.barrier},
    {"MPI_Get_library_version", (void **) &mpi.library_version},
    {"ompi_mpi_comm_world", &mpi.world}, {"ompi_mpi_float", &mpi.f32}, {"ompi_mpi_double", &mpi.f64},
    {"ompi_mpi_byte", &mpi.byte}, {"ompi_mpi_op_sum", &mpi.sum},
  };
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    *symbols[i].slot = dlsym(h, symbols[i].name);
    if (!*symbols[i].slot) {
      snprintf(failure, sizeof failure, "%s has no %s: Glassbox needs Open MPI 4 (libopenmpi-dev, tools/setup)", soname,
               symbols[i].name);
      return;
    }
  }
  int length = 0;
  mpi.library_version(version, &length);
  if (length >= 0 && length < (int) sizeof version) version[length] = 0;
  if (!strstr(version, "Open MPI")) {
    snprintf(failure, sizeof failure, "%s is not Open MPI (%.200s); install libopenmpi-dev (tools/setup)", soname,
             version);
  }
}

const char *glassbox_mpi_load(void) {
  pthread_once(&once, load);
  return failure[0] ? failure : NULL;
}

const char *glassbox_mpi_library_version(void) { return version; }

int glassbox_mpi_init(int *rank, int *size, int *serialized) {
  int done = 0, provided = 0, status = mpi.initialized(&done);
  if (status == 0 && !done) status = mpi.init_thread(NULL, NULL, THREAD_SERIALIZED, &provided);
  if (status == 0) status = mpi.query_thread(&provided);
  *serialized = provided >= THREAD_SERIALIZED;
  if (status == 0) status = mpi.comm_rank(mpi.world, rank);
  if (status == 0) status = mpi.comm_size(mpi.world, size);
  return status;
}

int glassbox_mpi_finalize(void) { return mpi.finalize(); }
int glassbox_mpi_abort(int code) { return mpi.abort(mpi.world, code); }

int glassbox_mpi_allreduce_f32(float *values, int count) {
  return mpi.allreduce(IN_PLACE, values, count, mpi.f32, mpi.sum, mpi.world);
}

int glassbox_mpi_allreduce_f64(double *values, int count) {
  return mpi.allreduce(IN_PLACE, values, count, mpi.f64, mpi.sum, mpi.world);
}

int glassbox_mpi_iallreduce_f32(float *values, int count, void **request) {
  return mpi.iallreduce(IN_PLACE, values, count, mpi.f32, mpi.sum, mpi.world, request);
}

int glassbox_mpi_test(void **request, int *done) { return mpi.test(request, done, STATUS_IGNORE); }
int glassbox_mpi_wait(void **request) { return mpi.wait(request, STATUS_IGNORE); }

int glassbox_mpi_allgather(const void *mine, int bytes, void *all) {
  return mpi.allgather(mine, bytes, mpi.byte, all, bytes, mpi.byte, mpi.world);
}

int glassbox_mpi_barrier(void) { return mpi.barrier(mpi.world); }
