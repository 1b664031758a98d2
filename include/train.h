/* train.h - the single-process RLHF loop: the local feed (rollout,
 * segments, queries, scripted teacher) and the learner (reward model, PPO),
 * writing the run directory of report.h. The loop is deterministic for a
 * job (seed included). */
#ifndef RLHF_TRAIN_H
#define RLHF_TRAIN_H

#include <stddef.h>

#include "job.h"

typedef struct {
    double true_return_mean, true_return_std;
    int eval_episodes;
    long long env_steps;
    int labels;
    double wall_s;
} train_result_t;

/* Runs the job, writing into out_dir (created). progress: 0 none, 1 plain
 * lines, 2 one live line (a terminal). Returns 0, or -1 with err. */
int train_run(const job_t *job, const char *out_dir, int progress, train_result_t *result, char *err,
              size_t errlen);

#endif
