/* plot.c - `rlhf plot RUN_DIR [-o DIR]`: the learning curves of a run as
 * SVG figures (svg.h), from RUN_DIR/metrics.jsonl:
 *
 *   returns_vs_env_steps.svg   true return (left axis) and learned return
 *                              (right axis) against environment steps
 *   returns_vs_labels.svg      the same against labels (answered queries)
 *   accuracy_vs_labels.svg     the reward model's held-out and training
 *                              accuracy against labels
 *
 * Each iteration is one point where the figure exists (a true return only
 * when an episode ended in that iteration's batch). A run without a reward
 * model (--feedback true-reward) gets the first figure only; a run without
 * the true reward (people labelling) has no true-return series. The
 * figures go to DIR (default RUN_DIR), named above, written atomically.
 *
 * Exit status: 0 written; 2 a bad command line, or a metrics file that is
 * missing, empty or malformed (the message names the file and line). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "job.h"
#include "json.h"
#include "svg.h"
#include "util.h"

typedef struct {
    double *steps, *labels, *true_ret, *learned_ret, *val_acc, *train_acc;
    int n, cap;
} curves_t;

static void curves_free(curves_t *c) {
    free(c->steps);
    free(c->labels);
    free(c->true_ret);
    free(c->learned_ret);
    free(c->val_acc);
    free(c->train_acc);
}

static double number(const json_t *doc, const char *key) {
    double v;
    return json_number(json_get(doc, key), &v) == 0 ? v : NAN;
}

static int any_finite(const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) return 1;
    return 0;
}

/* Reads path into c. Returns 0, or -1 with err naming the file and line. */
static int read_metrics(const char *path, curves_t *c, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (n == 1 && line[0] == '\n') continue;
        char why[160];
        json_t *doc = json_parse(line, (size_t)n, why, sizeof why);
        if (!doc || json_type(doc) != JSON_OBJECT) {
            /* A run still going may have a torn last line (no newline
             * yet): what came before it is the figure. */
            if (line[n - 1] != '\n') {
                json_destroy(&doc);
                break;
            }
            snprintf(err, errlen, "%s:%d: not a JSON object: %s", path, lineno, doc ? "not an object" : why);
            json_destroy(&doc);
            rc = -1;
            break;
        }
        double steps = number(doc, "env_steps");
        if (!isfinite(steps)) {
            snprintf(err, errlen, "%s:%d: no env_steps: not a metrics.jsonl line", path, lineno);
            json_destroy(&doc);
            rc = -1;
            break;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->steps = reallocCheck(c->steps, sizeof(double) * c->cap);
            c->labels = reallocCheck(c->labels, sizeof(double) * c->cap);
            c->true_ret = reallocCheck(c->true_ret, sizeof(double) * c->cap);
            c->learned_ret = reallocCheck(c->learned_ret, sizeof(double) * c->cap);
            c->val_acc = reallocCheck(c->val_acc, sizeof(double) * c->cap);
            c->train_acc = reallocCheck(c->train_acc, sizeof(double) * c->cap);
        }
        int i = c->n++;
        c->steps[i] = steps;
        c->labels[i] = number(doc, "labels");
        c->true_ret[i] = number(doc, "true_return");
        c->learned_ret[i] = number(doc, "learned_return");
        c->val_acc[i] = number(doc, "rm_val_acc");
        c->train_acc[i] = number(doc, "rm_train_acc");
        json_destroy(&doc);
    }
    free(line);
    fclose(f);
    if (rc == 0 && c->n == 0) {
        snprintf(err, errlen, "%s has no iterations yet", path);
        rc = -1;
    }
    return rc;
}

/* The run's environment, from RUN_DIR/config.ini, for the titles ("" when
 * it cannot be read: the figures do not need it). */
static void run_env(const char *dir, char *env, size_t len) {
    static job_t job;
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    job_defaults(&job);
    env[0] = '\0';
    if (job_load(&job, path, err, sizeof err) == 0 && strlen(job.env.id) < len) memcpy(env, job.env.id, strlen(job.env.id) + 1);
}

static int write_chart(const char *dir, const char *name, const svg_chart_t *c, const svg_series_t *s, int n) {
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (svg_line_chart_file(path, c, s, n, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf plot: %s\n", err);
        return -1;
    }
    printf("%s\n", path);
    return 0;
}

static int usage(FILE *f) {
    fprintf(f, "usage: rlhf plot RUN_DIR [-o DIR]\n"
               "  writes returns_vs_env_steps.svg, returns_vs_labels.svg and accuracy_vs_labels.svg\n"
               "  from RUN_DIR/metrics.jsonl into DIR (default RUN_DIR)\n");
    return 2;
}

int cmd_plot(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return usage(stdout), 0;
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rlhf plot: %s needs a directory\n", argv[i]);
                return 2;
            }
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "rlhf plot: unknown option '%s'\n", argv[i]);
            return usage(stderr);
        } else if (run_dir) {
            fprintf(stderr, "rlhf plot: more than one run directory ('%s', '%s')\n", run_dir, argv[i]);
            return 2;
        } else {
            run_dir = argv[i];
        }
    }
    if (!run_dir) return usage(stderr);
    if (!out) out = run_dir;
    char path[4200], err[4400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    curves_t c = {0};
    if (read_metrics(path, &c, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf plot: %s\n", err);
        curves_free(&c);
        return 2;
    }
    if (mkdir_p(out) != 0) {
        fprintf(stderr, "rlhf plot: cannot create %s: %s\n", out, strerror(errno));
        curves_free(&c);
        return 1;
    }
    char env[300], title[400];
    run_env(run_dir, env, sizeof env);
    int has_true = any_finite(c.true_ret, c.n), has_learned = any_finite(c.learned_ret, c.n);
    int has_acc = any_finite(c.val_acc, c.n) || any_finite(c.train_acc, c.n);
    const char *true_axis = "true return (environment reward per episode)";
    const char *learned_axis = "learned return (normalised learned reward per episode)";
    svg_series_t ret[2];
    int nr = 0;
    if (has_true || !has_learned)
        ret[nr++] = (svg_series_t){.name = "true return", .x = c.steps, .y = c.true_ret, .n = c.n};
    if (has_learned)
        ret[nr++] = (svg_series_t){.name = "learned return", .x = c.steps, .y = c.learned_ret, .n = c.n,
                                   .right_axis = nr > 0, .dashed = 1};
    svg_chart_t chart = {.x_label = "environment steps",
                         .y_label = nr == 2 || has_true || !has_learned ? true_axis : learned_axis,
                         .y2_label = nr == 2 ? learned_axis : NULL};
    snprintf(title, sizeof title, "%s%sreturn against environment steps", env, env[0] ? ": " : "");
    chart.title = title;
    int rc = write_chart(out, "returns_vs_env_steps.svg", &chart, ret, nr);
    if (rc == 0 && has_learned) {
        for (int k = 0; k < nr; k++) ret[k].x = c.labels;
        chart.x_label = "labels (answered queries)";
        snprintf(title, sizeof title, "%s%sreturn against labels", env, env[0] ? ": " : "");
        rc = write_chart(out, "returns_vs_labels.svg", &chart, ret, nr);
    }
    if (rc == 0 && has_acc) {
        svg_series_t acc[2] = {
            {.name = "held-out accuracy", .x = c.labels, .y = c.val_acc, .n = c.n},
            {.name = "training accuracy", .x = c.labels, .y = c.train_acc, .n = c.n, .dashed = 1},
        };
        svg_chart_t ac = {.x_label = "labels (answered queries)",
                          .y_label = "reward-model accuracy (fraction of comparisons)",
                          .y_fixed = 1, .y_min = 0, .y_max = 1, .legend_bottom = 1};
        snprintf(title, sizeof title, "%s%sreward-model accuracy against labels", env, env[0] ? ": " : "");
        ac.title = title;
        rc = write_chart(out, "accuracy_vs_labels.svg", &ac, acc, 2);
    }
    if (rc == 0 && !has_learned)
        fprintf(stderr, "rlhf plot: %s has no reward model (true-reward run): no label or accuracy figures\n", path);
    curves_free(&c);
    return rc == 0 ? 0 : 1;
}
