/* report.h - the run directory rank 0 writes, in the format of `rlhf
 * train` (core/train.c): metrics.jsonl (one JSON object per iteration),
 * summary.json, and the deterministic evaluation at the end; plus what a
 * resume needs: cutting metrics.jsonl back to the checkpoint's iteration.
 *
 * The metric writer and the evaluation mirror train.c's static helpers
 * (write_metrics, evaluate); they go once train.h exposes those. */
#ifndef RLHF_WORKER_REPORT_H
#define RLHF_WORKER_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "job.h"
#include "policy.h"

typedef struct {
    const char *key;
    double value;
} metric_t;

/* The members of a JSON object, comma separated (the caller writes the
 * braces); whole numbers as integers, non-finite values as null. */
void report_metrics(FILE *f, const metric_t *m, size_t n);

/* Deterministic policy on fresh environments (train.c's evaluation): env i
 * plays episodes i, i+N, ... so that short episodes are not over-counted. */
void report_evaluate(const job_t *job, policy_t *policy, int episodes, double *mean, double *std);

/* Keeps the lines of iterations 0..keep-1 of the metrics file at path and
 * drops the rest (lines a run wrote after its last checkpoint, or a torn
 * last line), atomically. *kept gets the lines kept; fewer than keep means
 * lines were lost (logged). A missing file keeps nothing. Returns 0, or -1
 * with err. */
int report_metrics_truncate(const char *path, long long keep, long long *kept, char *err, size_t errlen);

#endif
