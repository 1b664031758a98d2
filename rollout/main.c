/* rollout/main.c - rlhf-rollout (filled in by the distributed-runtime work). */
#include <stdio.h>

#include "blas.h"
#include "util.h"

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf-rollout");
    fprintf(stderr, "rlhf-rollout: not yet available in this build; use 'rlhf train'\n");
    return 2;
}
