/* mpi_dist.c - see mpi_dist.h. */
#include "mpi_dist.h"

#include <limits.h>
#include <stdint.h>

#include "util.h"

#define CHUNK ((size_t)1 << 30)

void mpi_check(int rc, const char *call, const char *file, int line) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(rc, msg, &n) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    log_error("%s:%d: %s failed: %s", file, line, call, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

void mpi_dist_init(mpi_dist_t *d, MPI_Comm comm, dist_t *dist) {
    d->comm = comm;
    mpiCheck(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    mpiCheck(MPI_Comm_rank(comm, &d->rank));
    mpiCheck(MPI_Comm_size(comm, &d->size));
    mpi_dist_reset(d);
    dist->rank = d->rank;
    dist->size = d->size;
    dist->sum = mpi_dist_sum;
    dist->arg = d;
}

void mpi_dist_reset(mpi_dist_t *d) {
    d->seconds = 0;
    d->calls = 0;
}

void mpi_dist_sum(float *buf, size_t n, void *arg) {
    mpi_dist_t *d = arg;
    double t = MPI_Wtime();
    for (size_t off = 0; off < n; off += CHUNK) {   // one call unless n >= 2^30 floats
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)m, MPI_FLOAT, MPI_SUM, d->comm));
    }
    d->seconds += MPI_Wtime() - t;
    d->calls++;
}

void mpi_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm) {
    unsigned char *p = buf;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        mpiCheck(MPI_Bcast(p + off, (int)m, MPI_BYTE, root, comm));
    }
}
