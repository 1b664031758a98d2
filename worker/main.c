/* main.c - rlhf-worker: the MPI learner.
 *
 *   mpirun -np L rlhf-worker JOB.ini --local [--out DIR] [--seed N]
 *          [--set section.key=value]... [--feedback teacher|true-reward]
 *          [--resume] [--checkpoint-every N] [--hash-every K]
 *   mpirun -np L rlhf-worker --coordinator tcp://HOST:PORT [--id NAME]
 *          [--curve-secret PATH.key --curve-server COORDINATOR.pub]
 *          [--out DIR] [--resume] [--checkpoint-every N] [--hash-every K]
 *
 * L ranks, data parallel: every rank holds a whole learner (policy, value
 * function, reward-model ensemble, labels); each computes its shard of every
 * minibatch and the ranks sum gradients and step statistics with ONE
 * MPI_Allreduce per optimiser step (mpi_dist.c). Rank 0 alone obtains the
 * data from a feed (feed.h: with --local, the actor, episodes, query
 * selection and scripted teacher of `rlhf train` in this process; with
 * --coordinator, the rollout workers' batches and the labelers' labels
 * through rlhf-coordinator, which also hands out the job: rank 0 gets it in
 * the Welcome and broadcasts its text, and sends the coordinator Shutdown
 * once run.total_steps are reached) and shares each iteration's trajectory batch and new labels
 * with every rank (share.c), so the replicas stay bitwise identical. Every
 * K iterations, before each checkpoint and at the end they prove it: an
 * MPI_Allgather of learner_hash(); a mismatch logs every rank's hash and
 * aborts the job with status 3.
 *
 * Run directory (rank 0 writes it; report.h, as `rlhf train`): config.ini,
 * metrics.jsonl (train's keys plus ranks, allreduce_s, allreduce_n,
 * t_share, t_step), summary.json (train's keys plus ranks, iterations,
 * replica_hash_checks, resumed_from, allreduce_s, watch_warnings),
 * checkpoint.bin. Rank 0 runs the reward-hacking watch (watch.h) on every
 * iteration and, with --coordinator, sends the coordinator a Status (at
 * most every 0.5 s): the learner's figures docs/operating.md lists.
 *
 * Checkpoints (checkpoint.h) every N iterations (default 100; 0: never
 * periodically), at the end, and on SIGTERM or SIGINT: the handler only
 * sets a flag; at the top of every iteration the ranks take the maximum of
 * their flags with an MPI_Allreduce, so all stop after the same iteration;
 * rank 0 writes the checkpoint and every rank exits 128 + the signal (143
 * for SIGTERM). Signal the ranks themselves (Slurm's scancel does): mpirun,
 * when signalled, forwards SIGTERM but exits at once and kills the ranks
 * odls_base_sigkill_timeout (1 s) later. --resume: rank 0 reads
 * DIR/checkpoint.bin and broadcasts it, every rank restores from the same
 * bytes, and the run goes on with continuous counters; metrics.jsonl is cut
 * back to the checkpoint's iteration first (metrics are fsync'd before each
 * checkpoint, so no line before it is ever missing). With --coordinator,
 * rank 0 decodes DIR/checkpoint.bin against DIR/config.ini before it
 * connects, so its first Register carries the run's progress (env steps,
 * answered queries, label cursor): a coordinator started fresh continues
 * the label schedule from there (`rlhf run --resume`).
 *
 * Exit status: 0 done; 1 a run-time failure (I/O); 2 a bad command line,
 * job or checkpoint; 3 the replicas diverged; 128 + signal after the
 * checkpoint a signal asked for.
 *
 * Testing aid: RLHF_WORKER_TEST_DIVERGE=RANK:ITER perturbs that rank's
 * policy after that iteration, to exercise the divergence check. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "checkpoint.h"
#include "feed.h"
#include "job.h"
#include "learner.h"
#include "mpi_dist.h"
#include "peer.h"
#include "report.h"
#include "share.h"
#include "util.h"
#include "watch.h"

#define EXIT_RUNTIME 1
#define EXIT_INPUT 2
#define EXIT_DIVERGED 3

typedef struct {
    int resume, local;
    long long checkpoint_every, hash_every;
    const char *coordinator, *id, *secret, *server;   /* --coordinator mode */
    const char *out;
} opts_t;

typedef struct {
    job_t job;
    opts_t opt;
    int rank, size;
    mpi_dist_t md;
    dist_t dist;
    learner_t *l;
    feed_t *feed;               /* rank 0 */
    share_t *share;
    FILE *metrics;              /* rank 0 */
    char dir[1200], ckpt_path[1300], metrics_path[1300];
    long long env_steps;
    int answered;
    double t0, wall_before;     /* wall_s = wall_before + now - t0 */
    int hash_checks;
    long long resumed_from;     /* -1: a fresh run */
    watch_t *watch;             /* rank 0: the reward-hacking watch */
    double last_status;         /* rank 0: when the last Status went to the coordinator */
    double true_return, learned_return;     /* the latest that existed, for Status */
} worker_t;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static double wall(const worker_t *w) { return w->wall_before + now_s() - w->t0; }

/* Every rank gets the largest value any rank had: one rank's failure (or
 * signal) stops them all, after the same iteration. */
static int agree_max(int v) {
    int all;
    mpiCheck(MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return all;
}

static int usage(int rank, FILE *f) {
    if (rank == 0)
        fprintf(f, "usage: mpirun -np L rlhf-worker JOB.ini --local [--out DIR] [--seed N] [--set section.key=value]...\n"
                   "                  [--feedback teacher|true-reward] [--resume] [--checkpoint-every N] [--hash-every K]\n"
                   "       mpirun -np L rlhf-worker --coordinator tcp://HOST:PORT [--id NAME]\n"
                   "                  [--curve-secret PATH.key --curve-server COORDINATOR.pub] [--out DIR] [--resume]\n"
                   "                  [--checkpoint-every N] [--hash-every K]\n");
    return EXIT_INPUT;
}

static int parse_count(const char *opt, const char *val, long long *out, int rank) {
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end || v < 0) {
        if (rank == 0) fprintf(stderr, "rlhf-worker: %s: expected a whole number >= 0, got '%s'\n", opt, val);
        return -1;
    }
    *out = v;
    return 0;
}

/* --coordinator mode: the job comes from the coordinator, so only where it
 * is, who we are and the worker's own options are taken here; the job's
 * options (--seed, --set, --feedback) belong on the coordinator, which
 * hands the same job to every peer. Returns 0 or EXIT_INPUT. */
static int parse_coord_args(int argc, char **argv, worker_t *w) {
    opts_t *o = &w->opt;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--resume") == 0) {
            o->resume = 1;
            continue;
        }
        if (opt[0] != '-' || opt[1] != '-' || strcmp(opt, "--local") == 0) {
            if (w->rank == 0)
                fprintf(stderr, "rlhf-worker: '%s': with --coordinator the job comes from the coordinator\n", opt);
            return usage(w->rank, stderr);
        }
        const char *val = i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            if (w->rank == 0) fprintf(stderr, "rlhf-worker: %s needs a value\n", opt);
            return EXIT_INPUT;
        }
        if (strcmp(opt, "--coordinator") == 0) o->coordinator = val;
        else if (strcmp(opt, "--id") == 0) o->id = val;
        else if (strcmp(opt, "--curve-secret") == 0) o->secret = val;
        else if (strcmp(opt, "--curve-server") == 0) o->server = val;
        else if (strcmp(opt, "--out") == 0) o->out = val;
        else if (strcmp(opt, "--checkpoint-every") == 0) {
            if (parse_count(opt, val, &o->checkpoint_every, w->rank) != 0) return EXIT_INPUT;
        } else if (strcmp(opt, "--hash-every") == 0) {
            if (parse_count(opt, val, &o->hash_every, w->rank) != 0) return EXIT_INPUT;
        } else {
            if (w->rank == 0)
                fprintf(stderr, "rlhf-worker: %s: %s\n", opt,
                        strcmp(opt, "--seed") == 0 || strcmp(opt, "--set") == 0 || strcmp(opt, "--feedback") == 0
                            ? "with --coordinator the job comes from the coordinator; set it there"
                            : "unknown option");
            return usage(w->rank, stderr);
        }
    }
    if (!o->secret != !o->server) {
        if (w->rank == 0) fprintf(stderr, "rlhf-worker: CURVE needs both --curve-secret and --curve-server\n");
        return EXIT_INPUT;
    }
    if (o->resume && !o->out) {
        if (w->rank == 0) fprintf(stderr, "rlhf-worker: --resume needs the run directory: --out DIR\n");
        return EXIT_INPUT;
    }
    return 0;
}

/* The command line, as `rlhf train` reads it (the job file first, so that
 * options override it wherever they appear), plus the worker's own
 * options. Every rank parses it; rank 0 reports. Returns 0 or EXIT_INPUT. */
static int parse_args(int argc, char **argv, worker_t *w) {
    char err[4096];
    const char *path = NULL;
    job_t *job = &w->job;
    opts_t *o = &w->opt;
    o->checkpoint_every = 100;
    o->hash_every = 10;
    job_defaults(job);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(w->rank, stdout);
            return -1;
        }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--coordinator") == 0) return parse_coord_args(argc, argv, w);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(w->rank, stdout);
            return -1;
        }
        if (strcmp(a, "--resume") == 0 || strcmp(a, "--local") == 0) continue;
        if (a[0] == '-' && a[1] == '-') {
            i++;
            continue;
        }
        if (path) {
            if (w->rank == 0) fprintf(stderr, "rlhf-worker: more than one job file ('%s', '%s')\n", path, a);
            return EXIT_INPUT;
        }
        path = a;
    }
    if (!path) {
        if (w->rank == 0) fprintf(stderr, "rlhf-worker: no job file given\n");
        return usage(w->rank, stderr);
    }
    if (job_load(job, path, err, sizeof err) != 0) {
        if (w->rank == 0) fprintf(stderr, "rlhf-worker: %s\n", err);
        return EXIT_INPUT;
    }
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (opt[0] != '-' || opt[1] != '-') continue;
        if (strcmp(opt, "--resume") == 0) {
            o->resume = 1;
            continue;
        }
        if (strcmp(opt, "--local") == 0) {
            o->local = 1;
            continue;
        }
        const char *val = i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            if (w->rank == 0) fprintf(stderr, "rlhf-worker: %s needs a value\n", opt);
            return EXIT_INPUT;
        }
        if (strcmp(opt, "--checkpoint-every") == 0) {
            if (parse_count(opt, val, &o->checkpoint_every, w->rank) != 0) return EXIT_INPUT;
            continue;
        }
        if (strcmp(opt, "--hash-every") == 0) {
            if (parse_count(opt, val, &o->hash_every, w->rank) != 0) return EXIT_INPUT;
            continue;
        }
        int applied = job_option(job, opt, val, err, sizeof err);
        if (applied == 0) {
            if (w->rank == 0) fprintf(stderr, "rlhf-worker: unknown option '%s'\n", opt);
            return usage(w->rank, stderr);
        }
        if (applied < 0) {
            if (w->rank == 0) fprintf(stderr, "rlhf-worker: %s\n", err);
            return EXIT_INPUT;
        }
    }
    if (job_validate(job, err, sizeof err) != 0) {
        if (w->rank == 0) fprintf(stderr, "rlhf-worker: %s: %s\n", path, err);
        return EXIT_INPUT;
    }
    if (!o->local) {
        if (w->rank == 0)
            fprintf(stderr, "rlhf-worker: say where the data comes from: --local (rank 0 acts, selects queries and "
                            "lets the scripted teacher answer) or --coordinator tcp://HOST:PORT\n");
        return EXIT_INPUT;
    }
    if (o->resume && !job->run.out[0]) {
        if (w->rank == 0) fprintf(stderr, "rlhf-worker: --resume needs the run directory: --out DIR\n");
        return EXIT_INPUT;
    }
    return 0;
}

/* All ranks: the replicas must be bitwise identical. On a mismatch rank 0
 * logs every rank's hash and the job aborts with EXIT_DIVERGED. */
static void hash_check(worker_t *w, long long iteration) {
    uint64_t h = learner_hash(w->l);
    uint64_t *all = mallocCheck(sizeof(uint64_t) * w->size);
    mpiCheck(MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD));
    w->hash_checks++;
    int same = 1;
    for (int r = 1; r < w->size; r++) same &= all[r] == all[0];
    if (!same) {
        if (w->rank == 0) {
            log_error("REPLICAS DIVERGED after %lld iterations: their learner hashes differ", iteration);
            for (int r = 0; r < w->size; r++)
                log_error("  rank %d: learner_hash %016" PRIx64 "%s", r, all[r], all[r] == all[0] ? "" : "  <- differs");
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, EXIT_DIVERGED);
        }
        sleep(2);   // leave rank 0 the time to say why
        MPI_Abort(MPI_COMM_WORLD, EXIT_DIVERGED);
    }
    free(all);
}

/* Checkpoint after `iteration` iterations: replicas checked first (a
 * diverged state is never saved), metrics made durable, then rank 0 writes.
 * Returns 0, or -1 (rank 0: the write failed; logged). */
static int checkpoint(worker_t *w, long long iteration) {
    hash_check(w, iteration);
    if (w->rank != 0) return 0;
    double ts = now_s();
    if (fflush(w->metrics) != 0 || fsync(fileno(w->metrics)) != 0) {
        log_error("cannot sync %s: %s", w->metrics_path, strerror(errno));
        return -1;
    }
    checkpoint_loop_t loop = {0};
    w->feed->save(w->feed, &loop);
    loop.iteration = iteration;
    loop.wall_s = wall(w);
    char err[4096];
    int rc = checkpoint_save(w->ckpt_path, w->l, &loop, err, sizeof err);
    free(loop.extra);
    if (rc != 0)
        log_error("%s", err);
    else
        log_info("checkpoint after %lld iterations: %s (%.3f s)", iteration, w->ckpt_path, now_s() - ts);
    return rc;
}

/* Rank 0: the run directory and its config.ini. */
static int open_run_dir(worker_t *w, char *err, size_t errlen) {
    if (w->job.run.out[0]) {
        snprintf(w->dir, sizeof w->dir, "%s", w->job.run.out);
    } else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(w->dir, sizeof w->dir, "runs/%s-s%llu-%s", w->job.env.id, (unsigned long long)w->job.run.seed, stamp);
    }
    snprintf(w->ckpt_path, sizeof w->ckpt_path, "%s/checkpoint.bin", w->dir);
    snprintf(w->metrics_path, sizeof w->metrics_path, "%s/metrics.jsonl", w->dir);
    return report_open_dir(w->dir, &w->job, err, errlen);
}

/* All ranks: restore from DIR/checkpoint.bin, which rank 0 reads and
 * broadcasts. Returns the iteration to go on from, or -1 (rank 0 has said
 * why). */
static long long resume(worker_t *w) {
    char err[4096] = "";
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = 0;
    if (w->rank == 0) rc = checkpoint_read_file(w->ckpt_path, &buf, &len, err, sizeof err) != 0;
    uint64_t n = len;
    mpiCheck(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (rc) {
        if (w->rank == 0) log_error("cannot resume: %s", err);
        return -1;
    }
    mpiCheck(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    if (w->rank != 0) buf = mallocCheck(n ? n : 1);
    mpi_bcast_bytes(buf, n, 0, MPI_COMM_WORLD);
    checkpoint_loop_t loop = {0};
    char why[1536];
    rc = checkpoint_decode(w->l, buf, n, &loop, why, sizeof why) != 0;
    free(buf);
    if (rc) snprintf(err, sizeof err, "%s: %s", w->ckpt_path, why);
    if (!rc && w->rank == 0 && w->feed->restore(w->feed, &loop, why, sizeof why) != 0) {
        snprintf(err, sizeof err, "%s: %s", w->ckpt_path, why);
        rc = 1;
    }
    long long kept = 0;
    if (!rc && w->rank == 0 && report_metrics_truncate(w->metrics_path, loop.iteration, &kept, err, sizeof err) != 0)
        rc = 1;
    /* The watch goes on where it was: its window and counts from the kept lines. */
    if (!rc && w->rank == 0) report_watch_replay(w->metrics_path, w->watch);
    free(loop.extra);
    if (agree_max(rc)) {
        if (w->rank == 0) log_error("cannot resume: %s", err);
        return -1;
    }
    w->env_steps = loop.env_steps;
    w->answered = loop.answered;
    w->wall_before = loop.wall_s;
    w->resumed_from = loop.iteration;
    if (w->rank == 0)
        log_info("resumed from %s after %lld iterations (%lld env steps, %d labels answered)", w->ckpt_path,
                 loop.iteration, loop.env_steps, loop.answered);
    hash_check(w, loop.iteration);
    return loop.iteration;
}

/* Testing aid: RLHF_WORKER_TEST_DIVERGE=RANK:ITER. */
static void maybe_diverge(worker_t *w, long long it) {
    const char *spec = getenv("RLHF_WORKER_TEST_DIVERGE");
    int rank;
    long long iter;
    if (spec && sscanf(spec, "%d:%lld", &rank, &iter) == 2 && rank == w->rank && iter == it) {
        log_warn("RLHF_WORKER_TEST_DIVERGE: perturbing this replica's policy after iteration %lld", it);
        w->l->policy->params[0] += 1e-3f;
    }
}

/* Rank 0 with --coordinator: the learner's figures to the coordinator,
 * which keeps the latest Status for status.json, /metrics and `rlhf
 * status` (docs/operating.md). At most STATUS_EVERY_S apart, and always
 * after the last iteration, so a fast learner does not flood the link.
 * step_s: the iteration's learning (labels, refit, PPO update; not the wait
 * for data); allreduce_s: its time in MPI_Allreduce. */
#define STATUS_EVERY_S 0.5
static void send_status(worker_t *w, const report_iter_t *r, double step_s, double allreduce_s, int last) {
    learnerlink_t *ll = feed_coord_link(w->feed);
    double now = now_s();
    if (!ll || (!last && now - w->last_status < STATUS_EVERY_S)) return;
    w->last_status = now;
    const learner_t *l = w->l;
    int rm = l->rm && l->n_labels > 0;
    static const char *const names[] = {"reward_model_accuracy", "ensemble_disagreement", "true_return",
                                        "learned_return", "learner_step_seconds", "allreduce_seconds",
                                        "env_steps", "labels", "iteration", "watch_warnings", "ranks"};
    const double values[] = {rm && l->fit.val_acc >= 0 ? l->fit.val_acc : NAN,
                             rm ? l->disagreement : NAN,
                             w->true_return,
                             w->learned_return,
                             step_s,
                             allreduce_s,
                             (double)r->env_steps,
                             r->answered,
                             (double)(r->iteration + 1),
                             (double)watch_warnings(w->watch),
                             w->size};
    /* A failure is transient (not registered right now); the next one goes. */
    learnerlink_send_status(ll, last ? "done" : "rl", l->policy_version, (uint64_t)l->fits, names, values,
                            sizeof values / sizeof values[0]);
}

/* The iterations [start, iterations). Returns the exit status. */
static int run(worker_t *w, long long start, long long iterations) {
    const job_t *job = &w->job;
    learner_t *l = w->l;
    double last_print = 0, allreduce_total = 0;
    int stopped = 0, status = SHARE_DATA;
    long long it;
    for (it = start; it < iterations; it++) {
        if ((stopped = agree_max(stop_signal)) != 0) break;
        double t_step = now_s();
        mpi_dist_reset(&w->md);
        share_hdr_t hdr = {0};
        if (w->rank == 0) {
            feed_batch_t fb;
            char err[4096] = "";
            int rc = w->feed->next(w->feed, l, it, &fb, err, sizeof err);
            if (rc == 0) {
                share_pack(w->share, &fb, &hdr);
            } else {
                hdr.status = rc == 1 ? SHARE_END : SHARE_ERROR;
                if (rc < 0) log_error("the %s feed failed: %s", w->feed->name, err);
            }
        }
        double ts = now_s();
        mpi_bcast_bytes(&hdr, sizeof hdr, 0, MPI_COMM_WORLD);
        if ((status = hdr.status) != SHARE_DATA) break;
        share_reserve(w->share, &hdr);
        mpi_bcast_bytes(w->share->buf, hdr.payload, 0, MPI_COMM_WORLD);
        if (share_unpack(w->share, &hdr) != 0) {
            log_error("%s:%d: the shared payload does not match its header", __FILE__, __LINE__);
            MPI_Abort(MPI_COMM_WORLD, EXIT_RUNTIME);
        }
        double t_share = now_s() - ts;

        ts = now_s();
        for (int i = 0; i < w->share->n_labels; i++) learner_add_label(l, &w->share->labels[i], w->share->segs);
        if (hdr.refit) learner_fit_reward(l);
        double t_reward = hdr.t_query + now_s() - ts;

        ts = now_s();
        double frac = 1.0 - (double)it / iterations;
        double lr = job->ppo.anneal_lr ? job->ppo.lr * frac : job->ppo.lr;
        report_iter_t r = {.iteration = it, .env_steps = hdr.env_steps, .answered = hdr.answered, .asked = hdr.asked,
                           .episodes = hdr.episodes, .return_sum = hdr.return_sum, .lr = lr,
                           .t_rollout = hdr.t_rollout, .t_reward = t_reward};
        learner_update(l, w->share->batch, lr, &r.ps);
        r.t_ppo = now_s() - ts;
        double learn_s = t_reward - hdr.t_query + r.t_ppo;    // this rank's learning, without the waits
        maybe_diverge(w, it);
        w->env_steps = hdr.env_steps;
        w->answered = hdr.answered;
        allreduce_total += w->md.seconds;

        if (w->rank == 0) {
            char err[4096] = "";
            report_watch(w->watch, l, &r, hdr.refit);
            if (r.episodes) w->true_return = r.return_sum / r.episodes;
            if (isfinite(l->learned_return) && l->rm && l->n_labels > 0) w->learned_return = l->learned_return;
            /* Before publishing: the last publish ends the run at the
             * coordinator, which should have the final figures by then. */
            send_status(w, &r, learn_s, w->md.seconds,
                        it == iterations - 1 || hdr.env_steps >= job->run.total_steps);
            if (w->feed->publish && w->feed->publish(w->feed, l, err, sizeof err) != 0)
                log_error("the %s feed cannot publish the weights: %s", w->feed->name, err);
            r.wall_s = wall(w);
            const metric_t mine[] = {
                {"ranks", w->size},
                {"allreduce_s", w->md.seconds},
                {"allreduce_n", (double)w->md.calls},
                {"t_share", t_share},
                {"t_step", now_s() - t_step},
            };
            report_iteration(w->metrics, l, &r, mine, sizeof mine / sizeof mine[0]);
            fflush(w->metrics);
            double now = now_s();
            if (now - last_print > 1.0 || it == iterations - 1) {
                last_print = now;
                fprintf(stderr, "iter %lld/%lld  steps %lld  labels %d  rm_acc %.2f  return %.1f  allreduce %.1f ms  %.1fs\n",
                        it + 1, iterations, w->env_steps, w->answered, l->fit.val_acc,
                        hdr.episodes ? hdr.return_sum / hdr.episodes : NAN, 1e3 * w->md.seconds, wall(w));
            }
        }
        if (w->opt.hash_every > 0 && (it + 1) % w->opt.hash_every == 0) hash_check(w, it + 1);
        if (w->opt.checkpoint_every > 0 && (it + 1) % w->opt.checkpoint_every == 0 && it + 1 < iterations)
            checkpoint(w, it + 1);
    }
    /* A signal while rank 0 waited for data ends the feed: a stop, not the
     * run's end. */
    if (!stopped && status == SHARE_END) stopped = agree_max(stop_signal);
    if (stopped) {
        if (w->rank == 0) log_info("signal %d: stopping after %lld iterations", stopped, it);
        int rc = agree_max(checkpoint(w, it) != 0);
        return rc ? EXIT_RUNTIME : 128 + stopped;
    }
    if (status == SHARE_ERROR) return EXIT_RUNTIME;
    /* Done (or the feed ended): prove the replicas agree, save, evaluate. */
    int rc = agree_max(checkpoint(w, it) != 0);
    if (w->rank != 0) return rc ? EXIT_RUNTIME : 0;
    report_summary_t sum = {.answered = w->answered, .env_steps = w->env_steps, .return_mean = NAN, .return_std = NAN};
    if (job->run.eval_episodes > 0)
        report_evaluate(job, l->policy, job->run.eval_episodes, &sum.return_mean, &sum.return_std);
    sum.wall_s = wall(w);
    const metric_t mine[] = {
        {"ranks", w->size},
        {"iterations", (double)it},
        {"replica_hash_checks", w->hash_checks},
        {"resumed_from", w->resumed_from >= 0 ? (double)w->resumed_from : NAN},
        {"allreduce_s", allreduce_total},
        {"watch_warnings", (double)watch_warnings(w->watch)},
    };
    char err[4096];
    if (report_summary(w->dir, l, &sum, mine, sizeof mine / sizeof mine[0], err, sizeof err) != 0) {
        log_error("%s", err);
        return EXIT_RUNTIME;
    }
    printf("%s: true return %.1f +- %.1f over %d episodes; %d labels, %lld env steps, %.1f s, %d ranks; "
           "%s/summary.json\n",
           job->env.id, sum.return_mean, sum.return_std, job->run.eval_episodes, w->answered, w->env_steps, sum.wall_s,
           w->size, w->dir);
    return rc ? EXIT_RUNTIME : 0;
}

/* --coordinator --resume, rank 0, before connecting: the link's progress
 * from DIR/checkpoint.bin (decoded against DIR/config.ini, the run's job),
 * so that the first Register already says where the run is: a coordinator
 * that started fresh takes its label schedule and step count from it.
 * Returns 0, or -1 with err naming the file. */
static int resume_progress(const char *dir, learnerlink_options_t *link, char *err, size_t errlen) {
    static job_t job;
    char path[1300], why[2048];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    job_defaults(&job);
    if (job_load(&job, path, why, sizeof why) != 0 || job_validate(&job, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot resume: %s", why);
        return -1;
    }
    learner_t *l = learner_new(&job, why, sizeof why);
    if (!l) {
        snprintf(err, errlen, "cannot resume: %s: %s", path, why);
        return -1;
    }
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    checkpoint_loop_t loop = {0};
    int rc = checkpoint_load(path, l, &loop, why, sizeof why);
    char bad[256];
    if (rc == 0 && feed_coord_progress(&loop, link, bad, sizeof bad) != 0) {
        snprintf(why, sizeof why, "%s: %s", path, bad);
        rc = -1;
    }
    if (rc != 0) snprintf(err, errlen, "cannot resume: %s", why);
    free(loop.extra);
    learner_destroy(&l);
    return rc;
}

/* --coordinator: rank 0 connects and gets the job in the Welcome, every
 * rank loads the text it broadcasts (so all build the same learner).
 * Returns 0, or EXIT_INPUT / EXIT_RUNTIME (rank 0 has said why). */
static int coordinator_job(worker_t *w) {
    char err[4096] = "";
    int rc = 0;
    uint64_t n = 0;
    const char *text = NULL;
    if (w->rank == 0) {
        transport_keypair_t keys;
        char server_pub[TRANSPORT_Z85_LEN + 1];
        feed_coord_options_t fo = {.link = {.endpoint = w->opt.coordinator, .peer_id = w->opt.id, .n_ranks = w->size},
                                   .stop = &stop_signal};
        if (w->opt.resume && resume_progress(w->opt.out, &fo.link, err, sizeof err) != 0) rc = EXIT_INPUT;
        if (!rc && w->opt.secret) {
            if (peer_load_keys(w->opt.secret, w->opt.server, &keys, server_pub, err, sizeof err) != 0)
                rc = EXIT_INPUT;
            fo.link.keys = &keys;
            fo.link.server_public_z85 = server_pub;
        }
        if (!rc && !(w->feed = feed_coord_new(&fo, err, sizeof err))) rc = stop_signal ? 128 + stop_signal : EXIT_RUNTIME;
        memset(&keys, 0, sizeof keys);
        if (rc) log_error("%s", err);
        if (!rc) {
            text = feed_coord_job_text(w->feed);
            n = strlen(text) + 1;
        }
    }
    mpiCheck(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (rc) return rc;
    mpiCheck(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    char *buf = mallocCheck(n);
    if (w->rank == 0) memcpy(buf, text, n);
    mpi_bcast_bytes(buf, n, 0, MPI_COMM_WORLD);
    job_defaults(&w->job);
    if (job_load_text(&w->job, buf, "the coordinator's job", err, sizeof err) != 0) rc = EXIT_INPUT;
    free(buf);
    if (!rc && w->opt.out) snprintf(w->job.run.out, sizeof w->job.run.out, "%s", w->opt.out);
    if (!rc && job_validate(&w->job, err, sizeof err) != 0) rc = EXIT_INPUT;
    if (rc && w->rank == 0) log_error("%s", err);
    return rc;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    mpiCheck(MPI_Init(&argc, &argv));
    static worker_t w;
    w.resumed_from = -1;
    w.t0 = now_s();
    w.true_return = w.learned_return = NAN;
    w.watch = watch_new(NULL);
    mpi_dist_init(&w.md, MPI_COMM_WORLD, &w.dist);
    w.rank = w.md.rank;
    w.size = w.md.size;
    static char name[64];
    snprintf(name, sizeof name, "rlhf-worker[%d]", w.rank);
    log_set_name(name);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int rc = parse_args(argc, argv, &w);
    if (rc != 0) {
        mpiCheck(MPI_Finalize());
        return rc < 0 ? 0 : rc;     // -1: --help
    }
    if (w.opt.coordinator && (rc = coordinator_job(&w)) != 0) {
        if (w.feed) w.feed->destroy(&w.feed);
        mpiCheck(MPI_Finalize());
        return rc;
    }
    char err[4096] = "";
    w.l = learner_new(&w.job, err, sizeof err);
    if (w.l) w.l->dist = w.dist;
    int bad = !w.l;
    if (!bad && w.rank == 0) {
        if (!w.feed) w.feed = feed_local_new(&w.job, err, sizeof err);
        bad = !w.feed || open_run_dir(&w, err, sizeof err) != 0;
    }
    if (agree_max(bad)) {
        if (w.rank == 0) fprintf(stderr, "rlhf-worker: %s\n", err);
        mpiCheck(MPI_Finalize());
        return EXIT_INPUT;
    }
    w.share = share_new(w.job.ppo.n_steps, w.job.env.n_envs, w.l->obs_dim, w.l->act_dim, w.job.feedback.segment_len);
    long long per_iter = (long long)w.job.ppo.n_steps * w.job.env.n_envs;
    long long iterations = (w.job.run.total_steps + per_iter - 1) / per_iter, start = 0;
    if (w.opt.resume && (start = resume(&w)) < 0) {
        rc = EXIT_INPUT;
    } else {
        if (w.rank == 0) {
            w.metrics = fopen(w.metrics_path, w.opt.resume ? "a" : "w");
            if (!w.metrics) log_error("cannot write %s: %s", w.metrics_path, strerror(errno));
            if (start < iterations)
                log_info("%d ranks; OpenBLAS kernel %s; run directory %s; iterations %lld..%lld", w.size,
                         blas_corename(), w.dir, start, iterations - 1);
            else
                log_info("%d ranks; run directory %s: all %lld iterations were done; evaluating", w.size, w.dir,
                         iterations);
        }
        if (agree_max(w.rank == 0 && !w.metrics))
            rc = EXIT_RUNTIME;
        else
            rc = run(&w, start, iterations);
    }
    if (w.metrics) fclose(w.metrics);
    share_destroy(&w.share);
    if (w.feed) w.feed->destroy(&w.feed);
    learner_destroy(&w.l);
    watch_destroy(&w.watch);
    mpiCheck(MPI_Finalize());
    return rc;
}
