/* blas.h - choosing OpenBLAS's kernels before the library loads.
 *
 * Debian's OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to
 * SSE3 kernels, 4-5x slower. OPENBLAS_CORETYPE must be in the environment
 * before libopenblas initialises, which happens before main() runs, so
 * blas_setup() decides the kernel from the CPU's features and, when it has to
 * change the environment, re-executes the program once. A value the user
 * already set is respected; a kernel the CPU cannot run is never forced.
 * It also sets OPENBLAS_NUM_THREADS=1 unless set: one thread per process,
 * parallelism comes from processes and MPI ranks. */
#ifndef RLHF_BLAS_H
#define RLHF_BLAS_H

/* Call first in main(). May not return (re-exec). */
void blas_setup(int argc, char **argv);

/* The kernel OpenBLAS uses ("SkylakeX", "Haswell", "Prescott", ...). */
const char *blas_corename(void);

/* The kernel this CPU should use, by its features, or NULL for OpenBLAS's
 * own choice. */
const char *blas_best_coretype(void);

#endif
