/* runstat.h - running mean and variance per feature (Chan et al.'s parallel
 * update), for observation and reward normalisation. Plain struct of
 * doubles: copy it to checkpoint it. */
#ifndef RLHF_RUNSTAT_H
#define RLHF_RUNSTAT_H

#define RUNSTAT_MAX 64

typedef struct {
    int dim;
    double count;
    double mean[RUNSTAT_MAX];
    double var[RUNSTAT_MAX];
} runstat_t;

void runstat_init(runstat_t *s, int dim);
/* x is (n, dim). */
void runstat_update(runstat_t *s, const float *x, int n);
/* out = clamp((x - mean) / sqrt(var + 1e-8), -clip, clip); x is (n, dim); in place is fine. */
void runstat_apply(const runstat_t *s, const float *x, int n, float clip, float *out);

#endif
