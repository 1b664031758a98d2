/* watch.h - the reward-hacking watch: signs that the policy is exploiting
 * the learned reward rather than learning the task, checked on every
 * iteration's figures (docs/operating.md defines the rules; the numbers
 * here are their defaults).
 *
 *   returns       the learned return keeps rising while the true return
 *                 falls: over the last `window` iterations that have both
 *                 (episodes ended and the true reward exists), Kendall's
 *                 tau of the learned return against time is >= tau and the
 *                 true return's is <= -tau;
 *   accuracy      at a reward-model update with at least acc_min_n held-out
 *                 comparisons, the held-out (out-of-bag) accuracy is below
 *                 acc_min;
 *   disagreement  the ensemble's disagreement on the fresh rollouts is more
 *                 than disagree_ratio times its level on the labelled
 *                 segments, disagree_persist iterations in a row.
 *
 * A rule warns once when it starts to hold (one line, counted), and again
 * only after it has stopped holding: a long episode of hacking is one
 * warning, not one per iteration. Returns stops holding when a trend is
 * back within tau/2; disagreement after disagree_persist iterations in a
 * row at or under the ceiling (hysteresis: a figure hovering at a
 * threshold does not warn again and again).
 *
 * Pure computation over the numbers given (no learner, no I/O but the
 * warning lines), so tests feed it constructed series.
 *
 * Owns: the window of recent returns and the rules' states. */
#ifndef RLHF_WATCH_H
#define RLHF_WATCH_H

#include <stdio.h>

#define WATCH_MAX_WINDOW 256

typedef struct {
    int window;             /* W: points of the return series (20) */
    double tau;             /* trend threshold on Kendall's tau (0.4) */
    double acc_min;         /* held-out accuracy floor (0.6) */
    int acc_min_n;          /* held-out comparisons needed for the floor to apply (20) */
    double disagree_ratio;  /* fresh / labelled disagreement ceiling (3) */
    int disagree_persist;   /* iterations in a row over the ceiling (5) */
    FILE *log;              /* where warning lines go; NULL: log_warn() (stderr) */
} watch_options_t;

void watch_options_default(watch_options_t *o);

/* One iteration's figures. NaN marks what does not exist. */
typedef struct {
    long long iteration, env_steps;
    double true_return;             /* mean true return of the episodes that ended (NaN: none, or no true reward) */
    double learned_return;          /* the same episodes' learned return (NaN: none, or no reward model) */
    int refit;                      /* the reward model was updated this iteration */
    double val_acc;                 /* held-out accuracy of that update (NaN: nothing held out) */
    int val_n;                      /* held-out comparisons behind it */
    double disagreement;            /* on the fresh rollouts */
    double disagreement_labelled;   /* on the labelled segments */
} watch_point_t;

enum {
    WATCH_RETURNS = 1,
    WATCH_ACCURACY = 2,
    WATCH_DISAGREEMENT = 4,
};

typedef struct {
    double tau_learned, tau_true;   /* the window's trends; NaN until it is full */
    double trend_gap;               /* tau_learned - tau_true (NaN until full) */
    double disagreement_ratio;      /* fresh / labelled (NaN when either is missing) */
    int holding;                    /* WATCH_* bits of the rules that hold now */
    int warned;                     /* WATCH_* bits of the rules that warned on this point */
    long long warnings;             /* warnings so far */
} watch_result_t;

typedef struct watch watch_t;

/* o NULL: the defaults. Out-of-range options are clamped (window to
 * 3..WATCH_MAX_WINDOW, persist to >= 1). */
watch_t *watch_new(const watch_options_t *o);
void watch_destroy(watch_t **self_p);

/* Takes one iteration's figures; fills *out (may be NULL). Returns the
 * WATCH_* bits of the rules that warned on it (0: silent). */
int watch_add(watch_t *self, const watch_point_t *p, watch_result_t *out);

long long watch_warnings(const watch_t *self);

/* Silent: rules are evaluated and warnings counted, but no line is written
 * (replaying the iterations before a resume, whose warnings were printed
 * then). */
void watch_set_silent(watch_t *self, int silent);

/* Kendall's tau-a of x[0..n) against its index: (concordant - discordant)
 * pairs over all n(n-1)/2; ties count as neither. 0 for n < 2. */
double watch_kendall_tau(const double *x, int n);

#endif
