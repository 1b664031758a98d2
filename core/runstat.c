/* runstat.c - see runstat.h. */
#include "runstat.h"

#include <math.h>
#include <string.h>

void runstat_init(runstat_t *s, int dim) {
    memset(s, 0, sizeof *s);
    s->dim = dim;
    s->count = 1e-4;    /* as SB3's RunningMeanStd: no division by zero before data */
    for (int j = 0; j < dim; j++) s->var[j] = 1.0;
}

void runstat_update(runstat_t *s, const float *x, int n) {
    if (n <= 0) return;
    for (int j = 0; j < s->dim; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++) m += x[(size_t)i * s->dim + j];
        m /= n;
        for (int i = 0; i < n; i++) {
            double d = x[(size_t)i * s->dim + j] - m;
            v += d * d;
        }
        v /= n;
        double delta = m - s->mean[j], tot = s->count + n;
        double m2 = s->var[j] * s->count + v * n + delta * delta * s->count * n / tot;
        s->mean[j] += delta * n / tot;
        s->var[j] = m2 / tot;
    }
    s->count += n;
}

void runstat_apply(const runstat_t *s, const float *x, int n, float clip, float *out) {
    float mean[RUNSTAT_MAX], inv[RUNSTAT_MAX];
    for (int j = 0; j < s->dim; j++) {
        mean[j] = (float)s->mean[j];
        inv[j] = (float)(1.0 / sqrt(s->var[j] + 1e-8));
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < s->dim; j++) {
            size_t k = (size_t)i * s->dim + j;
            float z = (x[k] - mean[j]) * inv[j];
            out[k] = z > clip ? clip : (z < -clip ? -clip : z);
        }
}
