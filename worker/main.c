/* worker/main.c - rlhf-worker (filled in by the distributed-runtime work). */
#include <stdio.h>

#include "blas.h"
#include "util.h"

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf-worker");
    fprintf(stderr, "rlhf-worker: not yet available in this build; use 'rlhf train'\n");
    return 2;
}
