/* bench_allreduce.c - the learner's gradient synchronisation against a bare
 * MPI_Allreduce of the same buffer (float32, sum, in place), OSU style: for
 * each size, warm-up calls skipped, then the mean time per call on each
 * rank, reported as min / avg / max over the ranks. The figure of merit is
 * the ratio learner / bare (aim: <= 1.1): whatever the learner's dist_t
 * path (worker/mpi_dist.c: dist_sum -> mpi_dist_sum -> MPI_Allreduce, with
 * its timing) adds to the reduction itself.
 *
 * Sizes: the gradient buffers of the shipped jobs (policy + value
 * parameters, and the reward-model ensemble, each plus NN_STAT_SLOTS
 * statistics floats), then 4 KiB .. 16 MiB doubling. For the job buffers it
 * also prints "unfused": the gradients and the statistics as two separate
 * reductions, what fusing them into one saves.
 *
 * Run it directly (it re-launches itself under mpirun -np 2, or
 * RLHF_BENCH_RANKS) or under mpirun / srun. From the repository root (it
 * reads jobs/cartpole.ini and jobs/pendulum.ini).
 *
 * Needs MPI's compile flags; built without them (a generic rule), it says so
 * and exits 0. */
#if defined(__has_include)
#if __has_include(<mpi.h>)
#define HAVE_MPI 1
#endif
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef HAVE_MPI
int main(void) {
    printf("bench_allreduce: built without MPI's flags: it needs its own Makefile rule (mpi.h, -lmpi, "
           "worker/mpi_dist.o); skipped\n");
    return 0;
}
#else

#include <mpi.h>

#include "../worker/mpi_dist.h"
#include "blas.h"
#include "job.h"
#include "learner.h"
#include "nn.h"
#include "util.h"

typedef struct {
    char name[64];
    size_t floats;
    int job_buffer;     /* a job's gradient buffer (n_params + NN_STAT_SLOTS) */
} size_case_t;

/* Outside mpirun: run this same binary under it. */
static void relaunch_under_mpirun(char **argv) {
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("SLURM_STEP_ID"))
        return;
    const char *ranks = getenv("RLHF_BENCH_RANKS") ? getenv("RLHF_BENCH_RANKS") : "2";
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = '\0';
    setenv("OMPI_MCA_pml", getenv("OMPI_MCA_pml") ? getenv("OMPI_MCA_pml") : "ob1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    char *args[16];
    int k = 0;
    args[k++] = "mpirun";
    args[k++] = "--oversubscribe";
    if (geteuid() == 0) args[k++] = "--allow-run-as-root";
    args[k++] = "-np";
    args[k++] = (char *)ranks;
    args[k++] = self;
    for (int i = 1; argv[i] && k < 15; i++) args[k++] = argv[i];
    args[k] = NULL;
    execvp("mpirun", args);
    fprintf(stderr, "bench_allreduce: cannot run mpirun; running alone\n");
}

/* The gradient buffer sizes of a job's policy and reward model. */
static int job_sizes(const char *path, const char *label, size_case_t *out) {
    static job_t job;
    char err[1024];
    job_defaults(&job);
    if (job_load(&job, path, err, sizeof err) != 0 || job_validate(&job, err, sizeof err) != 0) {
        fprintf(stderr, "bench_allreduce: %s (run from the repository root)\n", err);
        return 0;
    }
    learner_t *l = learner_new(&job, err, sizeof err);
    if (!l) return 0;
    int n = 0;
    snprintf(out[n].name, sizeof out[n].name, "%s policy grads", label);
    out[n].floats = l->policy->n_params + NN_STAT_SLOTS;
    out[n++].job_buffer = 1;
    if (l->rm) {
        snprintf(out[n].name, sizeof out[n].name, "%s reward grads", label);
        out[n].floats = l->rm->n_params + NN_STAT_SLOTS;
        out[n++].job_buffer = 1;
    }
    learner_destroy(&l);
    return n;
}

enum { BARE, LEARNER, UNFUSED };
#define ROUNDS 7

/* Mean seconds per call on this rank. */
static double time_calls(int how, float *buf, size_t n, int iters, int warmup, const dist_t *dist, MPI_Comm comm) {
    double t = 0;
    for (int i = 0; i < warmup + iters; i++) {
        if (i == warmup) {
            mpiCheck(MPI_Barrier(comm));
            t = MPI_Wtime();
        }
        if (how == BARE) {
            mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm));
        } else if (how == LEARNER) {
            dist_sum(dist, buf, n);
        } else {
            mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, (int)(n - NN_STAT_SLOTS), MPI_FLOAT, MPI_SUM, comm));
            mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf + n - NN_STAT_SLOTS, NN_STAT_SLOTS, MPI_FLOAT, MPI_SUM, comm));
        }
    }
    return (MPI_Wtime() - t) / iters;
}

/* min / avg / max of v over ranks, at rank 0. */
static void over_ranks(double v, int size, double out[3], MPI_Comm comm) {
    double mn, mx, sum;
    mpiCheck(MPI_Reduce(&v, &mn, 1, MPI_DOUBLE, MPI_MIN, 0, comm));
    mpiCheck(MPI_Reduce(&v, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, comm));
    mpiCheck(MPI_Reduce(&v, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm));
    out[0] = mn;
    out[1] = sum / size;
    out[2] = mx;
}

int main(int argc, char **argv) {
    relaunch_under_mpirun(argv);
    blas_setup(argc, argv);
    mpiCheck(MPI_Init(&argc, &argv));
    mpi_dist_t md;
    dist_t dist;
    mpi_dist_init(&md, MPI_COMM_WORLD, &dist);
    log_set_name("bench_allreduce");

    size_case_t cases[64];
    int n = 0;
    n += job_sizes("jobs/cartpole.ini", "cartpole", cases + n);
    n += job_sizes("jobs/pendulum.ini", "pendulum", cases + n);
    for (size_t bytes = 4096; bytes <= ((size_t)16 << 20); bytes *= 2) {
        if (bytes >= (1 << 20))
            snprintf(cases[n].name, sizeof cases[n].name, "%zu MiB", bytes >> 20);
        else
            snprintf(cases[n].name, sizeof cases[n].name, "%zu KiB", bytes >> 10);
        cases[n].floats = bytes / sizeof(float);
        cases[n++].job_buffer = 0;
    }
    if (md.rank == 0) {
        char version[MPI_MAX_LIBRARY_VERSION_STRING];
        int len;
        mpiCheck(MPI_Get_library_version(version, &len));
        char *nl = strchr(version, '\n');
        if (nl) *nl = '\0';
        printf("bench_allreduce: %d ranks (%s); float32 sum in place; microseconds per call, mean over the\n"
               "timed calls on each rank, min/avg/max over ranks; ratio = learner avg / bare avg (aim <= 1.10)\n",
               md.size, version);
        printf("%-24s %9s %10s  %-26s %-26s %6s  %s\n", "buffer", "floats", "bytes", "bare MPI_Allreduce",
               "learner dist_sum", "ratio", "unfused (grads + stats)");
    }
    size_t max_floats = 0;
    for (int i = 0; i < n; i++)
        if (cases[i].floats > max_floats) max_floats = cases[i].floats;
    float *buf = callocCheck(max_floats, sizeof(float));    // zeros: sums stay 0, no overflow
    for (int i = 0; i < n; i++) {
        size_t bytes = cases[i].floats * sizeof(float);
        int iters = (int)((size_t)(64 << 20) / bytes);
        if (iters > 2000) iters = 2000;
        if (iters < 20) iters = 20;
        int warmup = iters / 10 + 2;
        /* Interleaved rounds, the best round of each kind: the machine is
         * shared, and noise only ever adds time. */
        double best[3] = {1e30, 1e30, 1e30};
        for (int round = 0; round < ROUNDS; round++)
            for (int how = BARE; how <= (cases[i].job_buffer ? UNFUSED : LEARNER); how++) {
                double t = time_calls(how, buf, cases[i].floats, iters, warmup, &dist, MPI_COMM_WORLD);
                if (t < best[how]) best[how] = t;
            }
        double r[3][3];
        for (int how = BARE; how <= UNFUSED; how++) over_ranks(best[how] * 1e6, md.size, r[how], MPI_COMM_WORLD);
        if (md.rank == 0) {
            char a[64], b[64], c[64] = "";
            snprintf(a, sizeof a, "%.1f / %.1f / %.1f", r[BARE][0], r[BARE][1], r[BARE][2]);
            snprintf(b, sizeof b, "%.1f / %.1f / %.1f", r[LEARNER][0], r[LEARNER][1], r[LEARNER][2]);
            if (cases[i].job_buffer)
                snprintf(c, sizeof c, "%.1f (%.2fx the fused)", r[UNFUSED][1], r[UNFUSED][1] / r[LEARNER][1]);
            printf("%-24s %9zu %10zu  %-26s %-26s %6.3f  %s\n", cases[i].name, cases[i].floats, bytes, a, b,
                   r[LEARNER][1] / r[BARE][1], c);
            fflush(stdout);
        }
    }
    free(buf);
    mpiCheck(MPI_Finalize());
    return 0;
}
#endif
