/* mpi_dist.h - the MPI side of the learner: mpiCheck(), the dist_t whose
 * sum is one MPI_Allreduce, and broadcasts of byte buffers of any size.
 *
 * Owns the timing of the gradient reductions (seconds and calls since the
 * last reset), which the worker reports per iteration as allreduce_s.
 *
 * Invariant: every MPI call here goes through mpiCheck(); MPI_COMM_WORLD's
 * error handler is MPI_ERRORS_RETURN (mpi_dist_init sets it), so a failure
 * is reported with the call and file:line, then the job is aborted. */
#ifndef RLHF_WORKER_MPI_DIST_H
#define RLHF_WORKER_MPI_DIST_H

#include <mpi.h>
#include <stddef.h>

#include "nn.h"

void mpi_check(int rc, const char *call, const char *file, int line);
#define mpiCheck(call) mpi_check((call), #call, __FILE__, __LINE__)

typedef struct {
    MPI_Comm comm;
    int rank, size;
    double seconds;         /* in MPI_Allreduce since the last reset */
    long long calls;
} mpi_dist_t;

/* Binds d to comm and fills dist so that dist_sum() is one MPI_Allreduce
 * (MPI_IN_PLACE, MPI_FLOAT, MPI_SUM) of the buffer over comm. */
void mpi_dist_init(mpi_dist_t *d, MPI_Comm comm, dist_t *dist);
void mpi_dist_reset(mpi_dist_t *d);

/* The dist_t sum callback (exposed for the allreduce benchmark). */
void mpi_dist_sum(float *buf, size_t n, void *arg);

/* MPI_Bcast of n bytes from root, in chunks below INT_MAX. */
void mpi_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm);

#endif
