#ifndef GLASSBOX_MPI_LOADER_H
#define GLASSBOX_MPI_LOADER_H

/* Open MPI (libmpi.so.40, Debian's libopenmpi-dev 4.x), opened with dlopen when a data-parallel
 * run first needs it, so a single-process glassbox maps no MPI. Every call works on
 * MPI_COMM_WORLD and returns MPI's status (0 is success); the default error handler ends the
 * job on a failure, so a call that returns has succeeded. */

#include <stddef.h>
#include <stdint.h>

/* Opens the library (once; later calls return at once): libmpi.so.40, or the file the
 * environment's GLASSBOX_MPI_LIBRARY names. NULL when it is open, else why not, naming the
 * Debian packages to install. */
const char *glassbox_mpi_load(void);

/* Open MPI's version line (MPI_Get_library_version), or "" before loading. */
const char *glassbox_mpi_library_version(void);

/* MPI_Init_thread asking for MPI_THREAD_SERIALIZED (any thread may call MPI, never two at
 * once), then this process's rank, the number of processes, and whether Open MPI granted
 * SERIALIZED (or more). */
int glassbox_mpi_init(int *rank, int *size, int *serialized);
int glassbox_mpi_finalize(void);
/* Ends every process of the job with `code`. */
int glassbox_mpi_abort(int code);

/* In-place sums over the processes. */
int glassbox_mpi_allreduce_f32(float *values, int count);
int glassbox_mpi_allreduce_f64(double *values, int count);

/* A non-blocking in-place sum of floats (MPI_Iallreduce); `request` identifies it to
 * glassbox_mpi_test and glassbox_mpi_wait, which clear it when it is done. */
int glassbox_mpi_iallreduce_f32(float *values, int count, void **request);
int glassbox_mpi_test(void **request, int *done);
int glassbox_mpi_wait(void **request);

/* Every process's `bytes` bytes at `mine`, in rank order, into `all` (size × bytes). */
int glassbox_mpi_allgather(const void *mine, int bytes, void *all);
int glassbox_mpi_barrier(void);

#endif
