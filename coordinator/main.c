/* coordinator/main.c - rlhf-coordinator: routes trajectories, labels and
 * weights between the rollout workers, the labelers and the learner
 * (coord.h; docs/protocol.md).
 *
 *   rlhf-coordinator JOB.ini --bind tcp://HOST:PORT [--out DIR]
 *                    [--set section.key=value]... [--max-message BYTES]
 *                    [--curve-secret PATH.key --allow ALLOW-LIST]
 *
 * With --out DIR the feedback store is DIR/feedback.db (durable, recovered
 * by a coordinator started again on the same DIR); without it the store is
 * in memory and [coordinator] http_port must be 0 (people's labels are
 * never kept only in memory). The labelers' HTTP API: docs/http-api.md.
 *
 * For tests only: RLHF_FAULT_LABEL_COMMITS=N in the environment makes the
 * first N label commits fail (SQLite's commit hook turns them into
 * rollbacks), to check that such a label is refused and never acknowledged.
 *
 * Exit status: 0 when the run ended (the learner's Shutdown) or on SIGTERM /
 * SIGINT; 1 on a start-up error (bind, keys); 2 on bad arguments or job. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "coord.h"
#include "job.h"
#include "util.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static int usage(FILE *f) {
    fprintf(f, "usage: rlhf-coordinator JOB.ini --bind tcp://HOST:PORT [--out DIR] [--set section.key=value]...\n"
               "                        [--max-message BYTES] [--curve-secret PATH.key --allow ALLOW-LIST]\n");
    return 2;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf-coordinator");
    const char *path = NULL, *bind = NULL, *out = NULL, *secret = NULL, *allow_path = NULL;
    size_t max_message = 0;
    static job_t job;
    char err[1200];
    job_defaults(&job);
    /* The job file first, so --set applies over it wherever it appears. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return usage(stdout), 0;
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            i++;
            continue;
        }
        if (path) return fprintf(stderr, "rlhf-coordinator: more than one job file\n"), usage(stderr);
        path = argv[i];
    }
    if (!path) return fprintf(stderr, "rlhf-coordinator: no job file given\n"), usage(stderr);
    if (job_load(&job, path, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf-coordinator: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') continue;
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) return fprintf(stderr, "rlhf-coordinator: %s needs a value\n", a), usage(stderr);
        if (strcmp(a, "--bind") == 0) bind = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else if (strcmp(a, "--curve-secret") == 0) secret = v;
        else if (strcmp(a, "--allow") == 0) allow_path = v;
        else if (strcmp(a, "--max-message") == 0) {
            char *end;
            max_message = strtoull(v, &end, 10);
            if (*end || max_message < 1024) return fprintf(stderr, "rlhf-coordinator: --max-message: bytes >= 1024\n"), 2;
        } else if (strcmp(a, "--set") == 0) {
            if (job_set(&job, v, err, sizeof err) != 0) return fprintf(stderr, "rlhf-coordinator: %s\n", err), 2;
        } else {
            return fprintf(stderr, "rlhf-coordinator: unknown option '%s'\n", a), usage(stderr);
        }
    }
    if (!bind) return fprintf(stderr, "rlhf-coordinator: --bind is required\n"), usage(stderr);
    if (!secret != !allow_path)
        return fprintf(stderr, "rlhf-coordinator: CURVE needs both --curve-secret and --allow\n"), 2;
    if (job_validate(&job, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf-coordinator: %s: %s\n", path, err);
        return 2;
    }
    coord_options_t o = {.bind = bind, .out_dir = out, .max_message = max_message};
    transport_keypair_t keys;
    if (secret) {
        /* DIR/NAME.key -> transport_keypair_load(DIR, NAME). */
        char dir[1024], name[256];
        const char *slash = strrchr(secret, '/'), *base = slash ? slash + 1 : secret;
        size_t blen = strlen(base);
        if (blen < 5 || strcmp(base + blen - 4, ".key") != 0 || blen - 4 >= sizeof name)
            return fprintf(stderr, "rlhf-coordinator: --curve-secret %s: expected NAME.key\n", secret), 2;
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - secret) : 1, slash ? secret : ".");
        snprintf(name, sizeof name, "%.*s", (int)(blen - 4), base);
        if (transport_keypair_load(&keys, dir[0] ? dir : "/", name, err, sizeof err) != 0) {
            fprintf(stderr, "rlhf-coordinator: %s\n", err);
            return 1;
        }
        o.keys = &keys;
        o.allow = transport_allow_load(allow_path, err, sizeof err);
        if (!o.allow) {
            fprintf(stderr, "rlhf-coordinator: %s\n", err);
            return 1;
        }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    coord_t *c = coord_new(&job, &o, err, sizeof err);
    memset(&keys, 0, sizeof keys);
    if (!c) {
        fprintf(stderr, "rlhf-coordinator: %s\n", err);
        return 1;
    }
    int rc = coord_run(c, &stop);
    coord_destroy(&c);
    return rc;
}
