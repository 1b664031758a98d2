/* rlhf.c - the user-facing command: dispatches to subcommands. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "cli.h"
#include "env.h"
#include "job.h"
#include "labeler.h"
#include "peer.h"
#include "train.h"
#include "transport.h"
#include "util.h"

static int usage(FILE *f) {
    fprintf(f,
            "usage: rlhf COMMAND [ARGS]\n"
            "  train JOB.ini [--seed N] [--out DIR] [--set section.key=value] [--feedback teacher|true-reward]\n"
            "                           learn in this one process\n"
            "  run JOB.ini [--learners L] [--rollouts R] [--labelers T] [--seed N] [--out DIR]\n"
            "        [--set section.key=value]... [--feedback teacher|true-reward|human]\n"
            "                           the distributed run on this machine: coordinator, MPI learner,\n"
            "                           rollout workers and scripted labelers\n"
            "  run --resume --out DIR [--learners L] [--rollouts R] [--labelers T]\n"
            "                           continue a stopped run from DIR/checkpoint.bin with DIR/config.ini\n"
            "  env replay FILE.jsonl    replay a Gymnasium reference file; exit 0 only if every step matches\n"
            "  env list                 list the environments\n"
            "  label --teacher SPEC --coordinator tcp://HOST:PORT [--id NAME] [--inflight N]\n"
            "        [--curve-secret PATH.key --curve-server COORDINATOR.pub]\n"
            "                           answer the coordinator's queries with the scripted teacher\n"
            "  keygen DIR NAME          write a CURVE key pair DIR/NAME.key, DIR/NAME.pub; prints an allow-list line\n"
            "  status tcp://HOST:PORT|http://HOST:PORT [--watch]\n"
            "                           a running job at a glance: workers, queue, labels, env steps/s, policy lag,\n"
            "                           the learner's accuracy, step and allreduce time\n"
            "  plot RUN_DIR [-o DIR]    the learning curves of RUN_DIR/metrics.jsonl as SVG figures\n"
            "  labelers add NAME --out RUN_DIR | list --out RUN_DIR | disable NAME --out RUN_DIR\n"
            "                           the people who may label a run (add prints the login token once)\n"
            "  labels export RUN_DIR [-o FILE]      the run's labels and their segments as JSON Lines\n"
            "  labels import FILE --out NEW_RUN_DIR [JOB.ini]\n"
            "                           seed a new run with earlier labels (checked against the run's job)\n");
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

/* cli.h */
void cli_default_run_dir(const job_t *job, char *dir, size_t len) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(dir, len, "runs/%s-s%llu-%s", job->env.id, (unsigned long long)job->run.seed, stamp);
}

/* cli.h */
int cli_load_job(int argc, char **argv, const char *cmd, job_t *job, const char **out) {
    char err[1024];
    const char *path = NULL;
    job_defaults(job);
    *out = NULL;
    /* The file first, so options override it wherever they appear. */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            i++;
            continue;
        }
        if (path) {
            fprintf(stderr, "rlhf %s: more than one job file ('%s', '%s')\n", cmd, path, argv[i]);
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "rlhf %s: no job file given\n", cmd);
        return 2;
    }
    if (job_load(job, path, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf %s: %s\n", cmd, err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' || argv[i][1] != '-') continue;
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) {
            fprintf(stderr, "rlhf %s: %s needs a value\n", cmd, opt);
            return 2;
        }
        int applied = job_option(job, opt, val, err, sizeof err);
        if (applied == 0) {
            fprintf(stderr, "rlhf %s: unknown option '%s'\n", cmd, opt);
            return 2;
        }
        if (applied < 0) {
            fprintf(stderr, "rlhf %s: %s\n", cmd, err);
            return 2;
        }
        i++;
    }
    if (job_validate(job, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf %s: %s: %s\n", cmd, path, err);
        return 2;
    }
    *out = job->run.out[0] ? job->run.out : NULL;
    return 0;
}

static int cmd_train(int argc, char **argv) {
    static job_t job;
    const char *out;
    int rc = cli_load_job(argc, argv, "train", &job, &out);
    if (rc) return rc;
    char dir[1200];
    if (!out) {
        cli_default_run_dir(&job, dir, sizeof dir);
        out = dir;
    }
    log_info("OpenBLAS kernel %s; run directory %s", blas_corename(), out);
    char err[1024];
    train_result_t res;
    int progress = isatty(STDERR_FILENO) ? 2 : 1;
    if (train_run(&job, out, progress, &res, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf train: %s\n", err);
        return 1;
    }
    printf("%s: true return %.1f +- %.1f over %d episodes; %d labels, %lld env steps, %.1f s; %s/summary.json\n",
           job.env.id, res.true_return_mean, res.true_return_std, res.eval_episodes, res.labels, res.env_steps,
           res.wall_s, out);
    return 0;
}

static volatile sig_atomic_t label_stop;
static void on_label_signal(int sig) {
    (void)sig;
    label_stop = 1;
}

/* rlhf label: a ZeroMQ labeler running the scripted teacher (labeler.h).
 * Exit 0 after the coordinator's Shutdown or a signal, 1 on an error, 2 on
 * bad arguments, 3 when the coordinator refuses our CURVE key. */
static int cmd_label(int argc, char **argv) {
    const char *endpoint = NULL, *teacher = NULL, *id = NULL, *secret = NULL, *server = NULL;
    int inflight = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "rlhf label: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--coordinator") == 0) endpoint = v;
        else if (strcmp(a, "--teacher") == 0) teacher = v;
        else if (strcmp(a, "--id") == 0) id = v;
        else if (strcmp(a, "--curve-secret") == 0) secret = v;
        else if (strcmp(a, "--curve-server") == 0) server = v;
        else if (strcmp(a, "--inflight") == 0) {
            inflight = atoi(v);
            if (inflight < 1 || inflight > 64) {
                fprintf(stderr, "rlhf label: --inflight: expected 1..64, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "rlhf label: unknown option '%s'\n", a);
            return usage(stderr);
        }
        i++;
    }
    if (!endpoint || !teacher) {
        fprintf(stderr, "rlhf label: --coordinator and --teacher are required\n");
        return usage(stderr);
    }
    if (!secret != !server) {
        fprintf(stderr, "rlhf label: CURVE needs both --curve-secret and --curve-server\n");
        return 2;
    }
    char err[1400];
    transport_keypair_t keys;
    char server_pub[TRANSPORT_Z85_LEN + 1];
    if (secret && peer_load_keys(secret, server, &keys, server_pub, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf label: %s\n", err);
        return 2;
    }
    static char logname[WIRE_MAX_NAME + 16];
    snprintf(logname, sizeof logname, "rlhf label%s%s", id ? " " : "", id ? id : "");
    log_set_name(logname);
    struct sigaction sa = {0};
    sa.sa_handler = on_label_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    labeler_options_t o = {.endpoint = endpoint,
                           .peer_id = id,
                           .teacher = teacher,
                           .keys = secret ? &keys : NULL,
                           .server_public_z85 = secret ? server_pub : NULL,
                           .max_inflight = inflight,
                           .stop = &label_stop};
    int rc = labeler_run(&o, err, sizeof err);
    if (rc != 0) fprintf(stderr, "rlhf label: %s\n", err);
    return rc;
}

static int cmd_keygen(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "rlhf keygen: expected DIR NAME\n");
        return usage(stderr);
    }
    char err[512];
    if (transport_keygen_cmd(argv[1], argv[2], stdout, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf keygen: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf");
    if (argc < 2) return usage(stderr);
    if (strcmp(argv[1], "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(argv[1], "run") == 0) return cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "env") == 0) return cmd_env(argc - 1, argv + 1);
    if (strcmp(argv[1], "label") == 0) return cmd_label(argc - 1, argv + 1);
    if (strcmp(argv[1], "keygen") == 0) return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0) return cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "plot") == 0) return cmd_plot(argc - 1, argv + 1);
    if (strcmp(argv[1], "labelers") == 0) return cmd_labelers(argc - 1, argv + 1);
    if (strcmp(argv[1], "labels") == 0) return cmd_labels(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) return usage(stdout), 0;
    fprintf(stderr, "rlhf: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
