/* blas.c - see blas.h. */
#include "blas.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

char *openblas_get_corename(void);

const char *blas_best_coretype(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* gcc's checks include the OS's XSAVE support for the wider registers. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

void blas_setup(int argc, char **argv) {
    (void)argc;
    int changed = 0;
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        changed = 1;
    }
    const char *best = blas_best_coretype();
    if (!getenv("OPENBLAS_CORETYPE") && best) {
        setenv("OPENBLAS_CORETYPE", best, 1);
        changed = 1;
    }
    /* The library read its environment at load time: start again, once. */
    if (changed && !getenv("RLHF_BLAS_REEXEC")) {
        setenv("RLHF_BLAS_REEXEC", "1", 1);
        execv("/proc/self/exe", argv);
        log_warn("cannot re-execute to select OpenBLAS kernel %s; continuing with %s",
                 best ? best : "default", blas_corename());
    }
}

const char *blas_corename(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}
