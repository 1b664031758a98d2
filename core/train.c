/* train.c - the single-process RLHF loop (see train.h).
 *
 * One iteration:
 *   1. the local feed (feed_local.c) acts: T steps of N environments with
 *      the current policy; and, when the label schedule says so, selects
 *      queries and lets the scripted teacher answer them;
 *   2. feedback: the new labels join the learner's, and the reward model is
 *      refit;
 *   3. learn: rewards (learned and normalised, or true), GAE and PPO
 *      (learner.c).
 * The teacher is the only code that reads the true reward in teacher mode;
 * the metrics read it for reporting. The MPI learner (worker/) runs the
 * same feed and learner, with the feed on rank 0 only. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "feed.h"
#include "learner.h"
#include "report.h"
#include "util.h"

int train_run(const job_t *job, const char *out_dir, int progress, train_result_t *res, char *err, size_t errlen) {
    double t0 = now_s();
    feed_t *feed = feed_local_new(job, err, errlen);
    if (!feed) return -1;
    learner_t *l = learner_new(job, err, errlen);
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
    FILE *metrics = NULL;
    if (l && report_open_dir(out_dir, job, err, errlen) == 0 && !(metrics = fopen(path, "w")))
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    if (!metrics) {
        learner_destroy(&l);
        feed->destroy(&feed);
        return -1;
    }
    long long per_iter = (long long)job->ppo.n_steps * job->env.n_envs;
    int iterations = (int)((job->run.total_steps + per_iter - 1) / per_iter), rc = 0;
    report_summary_t sum = {.return_mean = NAN, .return_std = NAN};
    double last_print = 0;
    watch_t *watch = watch_new(NULL);
    for (int it = 0; it < iterations; it++) {
        feed_batch_t fb;
        int got = feed->next(feed, l, it, &fb, err, errlen);
        if (got != 0) {     // 1: the feed has no more data, which ends the run
            rc = got < 0 ? -1 : 0;
            break;
        }
        sum.answered = fb.answered;
        sum.env_steps = fb.env_steps;
        double ts = now_s();
        for (int i = 0; i < fb.n_labels; i++) learner_add_label(l, &fb.labels[i], fb.segs);
        if (fb.refit) learner_fit_reward(l);
        double t_reward = fb.t_query + now_s() - ts;

        ts = now_s();
        double frac = 1.0 - (double)it / iterations;
        report_iter_t r = {.iteration = it, .env_steps = fb.env_steps, .answered = fb.answered, .asked = fb.asked,
                           .episodes = fb.batch->episodes, .return_sum = fb.batch->return_sum,
                           .lr = job->ppo.anneal_lr ? job->ppo.lr * frac : job->ppo.lr,
                           .t_rollout = fb.t_rollout, .t_reward = t_reward};
        learner_update(l, fb.batch, r.lr, &r.ps);
        r.t_ppo = now_s() - ts;
        r.wall_s = now_s() - t0;
        report_watch(watch, l, &r, fb.refit);
        report_iteration(metrics, l, &r, NULL, 0);
        double now = now_s(), true_ret = r.episodes ? r.return_sum / r.episodes : NAN;
        if (progress && (now - last_print > 0.25 || it == iterations - 1)) {
            last_print = now;
            char line[256];
            snprintf(line, sizeof line, "iter %d/%d  steps %lld  labels %d  rm_acc %.2f  return %.1f  entropy %.3f  %.1fs",
                     it + 1, iterations, fb.env_steps, fb.answered, l->fit.val_acc, true_ret, r.ps.entropy, now - t0);
            if (progress == 2)
                fprintf(stderr, "\r\033[K%s", line);
            else
                fprintf(stderr, "%s\n", line);
        }
    }
    if (progress == 2) fprintf(stderr, "\n");
    fclose(metrics);

    if (rc == 0) {
        if (job->run.eval_episodes > 0)
            report_evaluate(job, l->policy, job->run.eval_episodes, &sum.return_mean, &sum.return_std);
        sum.wall_s = now_s() - t0;
        const metric_t mine[] = {{"watch_warnings", (double)watch_warnings(watch)}};
        rc = report_summary(out_dir, l, &sum, mine, 1, err, errlen);
    }
    if (res) {
        res->true_return_mean = sum.return_mean;
        res->true_return_std = sum.return_std;
        res->eval_episodes = job->run.eval_episodes;
        res->env_steps = sum.env_steps;
        res->labels = sum.answered;
        res->wall_s = sum.wall_s;
    }
    watch_destroy(&watch);
    learner_destroy(&l);
    feed->destroy(&feed);
    return rc;
}
