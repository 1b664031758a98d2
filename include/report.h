/* report.h - the run directory, as `rlhf train` and rank 0 of rlhf-worker
 * write it:
 *   config.ini      the resolved job (job_write), enough to run it again
 *   metrics.jsonl   one JSON object per iteration
 *   summary.json    the final evaluation and totals
 * plus the deterministic evaluation behind the summary, and what a resume
 * needs: cutting metrics.jsonl back to the checkpoint's iteration.
 *
 * Numbers are written whole when whole; figures that do not exist yet (no
 * episode ended, no reward model) are null, never a sentinel number. A
 * program adds its own figures after the common ones (metric_t extras). */
#ifndef RLHF_REPORT_H
#define RLHF_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "job.h"
#include "learner.h"
#include "policy.h"
#include "ppo.h"
#include "watch.h"

typedef struct {
    const char *key;
    double value;
} metric_t;

/* Creates dir and writes dir/config.ini atomically. Returns 0, or -1 with
 * err. */
int report_open_dir(const char *dir, const job_t *job, char *err, size_t errlen);

/* One iteration's figures that the learner does not hold. */
typedef struct {
    long long iteration, env_steps;
    int answered, asked;        /* queries answered so far, and in this iteration */
    int episodes;               /* episodes that ended in the iteration's batch */
    double return_sum;          /* their true returns, summed */
    double lr;
    ppo_stats_t ps;
    double t_rollout, t_reward, t_ppo, wall_s;
    int watched;                /* report_watch() filled watch */
    watch_result_t watch;
} report_iter_t;

/* The reward-hacking watch (watch.h) on this iteration: the learner's
 * figures after its update (refit: the reward model was updated in this
 * iteration) go to w, whose verdict lands in it->watch for
 * report_iteration(). */
void report_watch(watch_t *w, const learner_t *l, report_iter_t *it, int refit);

/* Feeds the iterations of a metrics file (the lines a resume kept) to w,
 * silently, so the watch continues with the same window and count. A
 * missing file or line without the figures adds nothing. */
void report_watch_replay(const char *metrics_path, watch_t *w);

/* Writes one metrics.jsonl line: the figures of it and of l, then extra
 * (n_extra of them). The watch's figures (docs/operating.md):
 * ensemble_disagreement (fresh rollouts), ensemble_disagreement_labelled,
 * disagreement_ratio, rm_fits and rm_val_n (reward-model updates so far,
 * held-out comparisons of the last), return_trend_gap (Kendall tau of the learned return
 * minus the true return's, over the watch's window) and watch_warnings
 * (warnings so far). */
void report_iteration(FILE *f, const learner_t *l, const report_iter_t *it, const metric_t *extra, size_t n_extra);

/* A run's totals. return_mean and return_std: the evaluation's (NaN when
 * there was none). */
typedef struct {
    int answered;
    long long env_steps;
    double wall_s, return_mean, return_std;
} report_summary_t;

/* Writes dir/summary.json atomically: the job's environment, feedback and
 * seed, the BLAS kernel, learner_hash(l), the totals, then extra. Returns
 * 0, or -1 with err. */
int report_summary(const char *dir, const learner_t *l, const report_summary_t *s, const metric_t *extra,
                   size_t n_extra, char *err, size_t errlen);

/* Deterministic policy on fresh environments: env i plays episodes i, i+N,
 * ... so that short episodes are not over-counted. */
void report_evaluate(const job_t *job, policy_t *policy, int episodes, double *mean, double *std);

/* Keeps the lines of iterations 0..keep-1 of the metrics file at path and
 * drops the rest (lines a run wrote after its last checkpoint, or a torn
 * last line), atomically. *kept gets the lines kept; fewer than keep means
 * lines were lost (logged). A missing file keeps nothing. Returns 0, or -1
 * with err. */
int report_metrics_truncate(const char *path, long long keep, long long *kept, char *err, size_t errlen);

#endif
