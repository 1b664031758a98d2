/* coordinator/main.c - rlhf-coordinator (filled in by the distributed-runtime work). */
#include <stdio.h>

#include "blas.h"
#include "util.h"

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf-coordinator");
    fprintf(stderr, "rlhf-coordinator: not yet available in this build; use 'rlhf train'\n");
    return 2;
}
