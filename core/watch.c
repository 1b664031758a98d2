/* watch.c - see watch.h. */
#include "watch.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct watch {
    watch_options_t o;
    /* The last o.window (learned, true) return pairs, a ring. */
    double learned[WATCH_MAX_WINDOW], truth[WATCH_MAX_WINDOW];
    int head, n;
    int holding;            /* WATCH_* bits holding after the last point */
    int over_run, under_run;    /* iterations in a row with the disagreement over / not over the ceiling */
    int silent;           /* iterations in a row with the disagreement over the ceiling */
    long long warnings;
};

void watch_options_default(watch_options_t *o) {
    memset(o, 0, sizeof *o);
    o->window = 20;
    o->tau = 0.4;
    o->acc_min = 0.6;
    o->acc_min_n = 20;
    o->disagree_ratio = 3.0;
    o->disagree_persist = 5;
}

watch_t *watch_new(const watch_options_t *o) {
    watch_t *w = callocCheck(1, sizeof *w);
    if (o)
        w->o = *o;
    else
        watch_options_default(&w->o);
    if (w->o.window < 3) w->o.window = 3;
    if (w->o.window > WATCH_MAX_WINDOW) w->o.window = WATCH_MAX_WINDOW;
    if (w->o.disagree_persist < 1) w->o.disagree_persist = 1;
    return w;
}

void watch_destroy(watch_t **self_p) {
    free(*self_p);
    *self_p = NULL;
}

long long watch_warnings(const watch_t *w) { return w->warnings; }

void watch_set_silent(watch_t *w, int silent) { w->silent = silent; }

double watch_kendall_tau(const double *x, int n) {
    if (n < 2) return 0;
    long long s = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) s += (x[j] > x[i]) - (x[j] < x[i]);
    return (double)s / ((double)n * (n - 1) / 2);
}

static void warn(watch_t *w, const watch_point_t *p, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->warnings++;
    if (w->silent) return;
    if (w->o.log) {
        fprintf(w->o.log, "reward-hacking watch: %s (iteration %lld, %lld env steps)\n", msg, p->iteration,
                p->env_steps);
        fflush(w->o.log);
    } else {
        log_warn("reward-hacking watch: %s (iteration %lld, %lld env steps)", msg, p->iteration, p->env_steps);
    }
}

int watch_add(watch_t *w, const watch_point_t *p, watch_result_t *out) {
    watch_result_t r = {.tau_learned = NAN, .tau_true = NAN, .trend_gap = NAN, .disagreement_ratio = NAN};
    int W = w->o.window, holding = 0;

    /* Returns: only iterations that have both figures enter the window. */
    if (isfinite(p->true_return) && isfinite(p->learned_return)) {
        int at = (w->head + w->n) % W;
        if (w->n == W) w->head = (w->head + 1) % W;
        else w->n++;
        w->learned[at] = p->learned_return;
        w->truth[at] = p->true_return;
    }
    if (w->n == W) {
        double a[WATCH_MAX_WINDOW], b[WATCH_MAX_WINDOW];
        for (int i = 0; i < W; i++) {
            a[i] = w->learned[(w->head + i) % W];
            b[i] = w->truth[(w->head + i) % W];
        }
        r.tau_learned = watch_kendall_tau(a, W);
        r.tau_true = watch_kendall_tau(b, W);
        r.trend_gap = r.tau_learned - r.tau_true;
        /* Hysteresis: once holding, it holds until a trend is back within
         * half the threshold, so a window hovering at the threshold does not
         * warn again and again. */
        double t = w->holding & WATCH_RETURNS ? w->o.tau / 2 : w->o.tau;
        if (r.tau_learned >= t && r.tau_true <= -t) holding |= WATCH_RETURNS;
    }

    /* Accuracy: judged at each update; between updates the last verdict stands. */
    if (p->refit) {
        if (isfinite(p->val_acc) && p->val_n >= w->o.acc_min_n && p->val_acc < w->o.acc_min) holding |= WATCH_ACCURACY;
    } else {
        holding |= w->holding & WATCH_ACCURACY;
    }

    /* Disagreement: the ratio over the ceiling, several iterations in a
     * row. Symmetric persistence: it starts to hold after disagree_persist
     * iterations over the ceiling in a row, and stops after as many at or
     * under it, so a ratio hovering at the ceiling is one warning. A
     * missing figure breaks a run of either kind. */
    if (isfinite(p->disagreement) && isfinite(p->disagreement_labelled) && p->disagreement_labelled > 0) {
        r.disagreement_ratio = p->disagreement / p->disagreement_labelled;
        int over = r.disagreement_ratio > w->o.disagree_ratio;
        w->over_run = over ? w->over_run + 1 : 0;
        w->under_run = over ? 0 : w->under_run + 1;
    } else {
        w->over_run = w->under_run = 0;
    }
    if (w->holding & WATCH_DISAGREEMENT ? w->under_run < w->o.disagree_persist
                                        : w->over_run >= w->o.disagree_persist)
        holding |= WATCH_DISAGREEMENT;

    /* Warn on the rules that start to hold. */
    int start = holding & ~w->holding;
    if (start & WATCH_RETURNS)
        warn(w, p,
             "learned return rising (Kendall tau %+.2f) while true return falls (tau %+.2f) over the last %d "
             "iterations with episodes",
             r.tau_learned, r.tau_true, W);
    if (start & WATCH_ACCURACY)
        warn(w, p, "reward-model held-out accuracy %.3f is below %.2f (%d held-out comparisons)", p->val_acc,
             w->o.acc_min, p->val_n);
    if (start & WATCH_DISAGREEMENT)
        warn(w, p,
             "ensemble disagreement on fresh rollouts %.4g is %.1fx its level on the labelled segments (%.4g), "
             "%d iterations in a row",
             p->disagreement, r.disagreement_ratio, p->disagreement_labelled, w->over_run);
    w->holding = holding;
    r.holding = holding;
    r.warned = start;
    r.warnings = w->warnings;
    if (out) *out = r;
    return start;
}
