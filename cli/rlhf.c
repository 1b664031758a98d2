/* rlhf.c - the user-facing command: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "env.h"
#include "util.h"

static int usage(FILE *f) {
    fprintf(f,
            "usage: rlhf COMMAND [ARGS]\n"
            "  train JOB.ini [--seed N] [--out DIR] [--set section.key=value] [--feedback teacher|true-reward]\n"
            "  env replay FILE.jsonl    replay a Gymnasium reference file; exit 0 only if every step matches\n"
            "  env list                 list the environments\n");
    return 2;
}

static int cmd_env(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        for (const char *const *id = env_ids(); *id; id++) printf("%s\n", *id);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "replay") == 0) {
        char err[512];
        int rc = env_replay_file(argv[2], 1e-5, stdout, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "rlhf env replay: %s\n", err);
            return 2;
        }
        return rc;
    }
    return usage(stderr);
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf");
    if (argc < 2) return usage(stderr);
    if (strcmp(argv[1], "env") == 0) return cmd_env(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) return usage(stdout), 0;
    fprintf(stderr, "rlhf: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
