/* report.c - see report.h. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "env.h"
#include "json.h"
#include "util.h"

/* The members m, then extra, of a JSON object the caller has opened, and
 * its closing brace. */
static void end_object(FILE *f, const metric_t *m, size_t n, const metric_t *extra, size_t n_extra) {
    char num[32];
    for (size_t i = 0; i < n + n_extra; i++) {
        const metric_t *x = i < n ? &m[i] : &extra[i - n];
        if (isfinite(x->value) && x->value == floor(x->value) && fabs(x->value) < 1e15)
            snprintf(num, sizeof num, "%.0f", x->value);
        else
            json_format_number(num, sizeof num, x->value);
        fprintf(f, "%s\"%s\":%s", i ? "," : "", x->key, num);
    }
    fputs("}\n", f);
}

/* Writes text to dir/name atomically. */
static int write_in(const char *dir, const char *name, const char *text, size_t n, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (write_file_atomic(path, text, n) == 0) return 0;
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return -1;
}

static FILE *memstream(char **text, size_t *n) {
    FILE *f = open_memstream(text, n);
    if (!f) {
        log_error("%s:%d: open_memstream: %s", __FILE__, __LINE__, strerror(errno));
        exit(1);
    }
    return f;
}

int report_open_dir(const char *dir, const job_t *job, char *err, size_t errlen) {
    if (mkdir_p(dir) != 0) {
        snprintf(err, errlen, "cannot create run directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t n = 0;
    FILE *f = memstream(&text, &n);
    job_write(job, f);
    fclose(f);
    int rc = write_in(dir, "config.ini", text, n, err, errlen);
    free(text);
    return rc;
}

void report_watch(watch_t *w, const learner_t *l, report_iter_t *it, int refit) {
    int no_rm = !l->rm || l->n_labels == 0;
    watch_point_t p = {
        .iteration = it->iteration,
        .env_steps = it->env_steps,
        .true_return = it->episodes ? it->return_sum / it->episodes : NAN,
        .learned_return = no_rm ? NAN : l->learned_return,
        .refit = refit && !no_rm,
        .val_acc = no_rm || l->fit.val_acc < 0 ? NAN : l->fit.val_acc,
        .val_n = no_rm ? 0 : l->fit.val_n,
        .disagreement = no_rm ? NAN : l->disagreement,
        .disagreement_labelled = no_rm ? NAN : l->disagreement_labelled,
    };
    watch_add(w, &p, &it->watch);
    it->watched = 1;
}

/* A number of a metrics line, NaN when absent or null. */
static double line_number(const json_t *doc, const char *key) {
    double v;
    return json_number(json_get(doc, key), &v) == 0 ? v : NAN;
}

void report_watch_replay(const char *metrics_path, watch_t *w) {
    FILE *f = fopen(metrics_path, "rb");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    double fits = 0;
    watch_set_silent(w, 1);
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *doc = json_parse(line, (size_t)n, NULL, 0);
        if (!doc) continue;
        double it = line_number(doc, "iteration"), steps = line_number(doc, "env_steps");
        double f_now = line_number(doc, "rm_fits"), acc = line_number(doc, "rm_val_acc");
        double vn = line_number(doc, "rm_val_n");
        watch_point_t p = {
            .iteration = isfinite(it) ? (long long)it : 0,
            .env_steps = isfinite(steps) ? (long long)steps : 0,
            .true_return = line_number(doc, "true_return"),
            .learned_return = line_number(doc, "learned_return"),
            .refit = isfinite(f_now) && f_now != fits,
            .val_acc = acc,
            .val_n = isfinite(vn) ? (int)vn : 0,
            .disagreement = line_number(doc, "ensemble_disagreement"),
            .disagreement_labelled = line_number(doc, "ensemble_disagreement_labelled"),
        };
        if (isfinite(f_now)) fits = f_now;
        watch_add(w, &p, NULL);
        json_destroy(&doc);
    }
    watch_set_silent(w, 0);
    free(line);
    fclose(f);
}

void report_iteration(FILE *f, const learner_t *l, const report_iter_t *it, const metric_t *extra, size_t n_extra) {
    int no_rm = !l->rm || l->n_labels == 0;
    const watch_result_t *w = &it->watch;
    const ppo_stats_t *ps = &it->ps;
    const metric_t m[] = {
        {"iteration", (double)it->iteration},
        {"env_steps", (double)it->env_steps},
        {"labels", it->answered},
        {"labels_used", l->n_labels},
        {"asked", it->asked},
        {"rm_val_acc", no_rm || l->fit.val_acc < 0 ? NAN : l->fit.val_acc},
        {"rm_val_n", no_rm ? NAN : l->fit.val_n},
        {"rm_fits", l->fits},
        {"rm_train_acc", no_rm ? NAN : l->fit.train_acc},
        {"rm_loss", no_rm ? NAN : l->fit.loss},
        {"r_absorbing", no_rm ? NAN : l->abs_n},
        {"reward_corr", no_rm ? NAN : l->reward_corr},
        {"true_return", it->episodes ? it->return_sum / it->episodes : NAN},
        {"learned_return", no_rm ? NAN : l->learned_return},
        {"ensemble_disagreement", no_rm ? NAN : l->disagreement},
        {"ensemble_disagreement_labelled", no_rm ? NAN : l->disagreement_labelled},
        {"disagreement_ratio", it->watched ? w->disagreement_ratio : NAN},
        {"return_trend_gap", it->watched ? w->trend_gap : NAN},
        {"watch_warnings", it->watched ? (double)w->warnings : NAN},
        {"episodes", it->episodes},
        {"entropy", ps->entropy},
        {"approx_kl", ps->approx_kl},
        {"clip_frac", ps->clip_frac},
        {"pg_loss", ps->pg_loss},
        {"v_loss", ps->v_loss},
        {"grad_norm", ps->grad_norm},
        {"lr", it->lr},
        {"t_rollout", it->t_rollout},
        {"t_reward", it->t_reward},
        {"t_ppo", it->t_ppo},
        {"wall_s", it->wall_s},
    };
    fputc('{', f);
    end_object(f, m, sizeof m / sizeof m[0], extra, n_extra);
}

int report_summary(const char *dir, const learner_t *l, const report_summary_t *s, const metric_t *extra,
                   size_t n_extra, char *err, size_t errlen) {
    const job_t *job = l->job;
    char *text = NULL;
    size_t n = 0;
    FILE *f = memstream(&text, &n);
    fprintf(f, "{\"env\":");
    json_write_string(f, job->env.id, strlen(job->env.id));
    fprintf(f, ",\"feedback\":\"%s\",\"seed\":%llu,\"blas_core\":", l->rm ? "teacher" : "true-reward",
            (unsigned long long)job->run.seed);
    json_write_string(f, blas_corename(), strlen(blas_corename()));
    fprintf(f, ",\"learner_hash\":\"%016" PRIx64 "\",", learner_hash(l));
    const metric_t m[] = {
        {"labels", s->answered},
        {"labels_used", l->n_labels},
        {"env_steps", (double)s->env_steps},
        {"wall_s", s->wall_s},
        {"true_return_mean", s->return_mean},
        {"true_return_std", s->return_std},
        {"eval_episodes", job->run.eval_episodes},
        {"rm_val_acc", l->rm && l->fit.val_acc >= 0 ? l->fit.val_acc : NAN},
    };
    end_object(f, m, sizeof m / sizeof m[0], extra, n_extra);
    fclose(f);
    int rc = write_in(dir, "summary.json", text, n, err, errlen);
    free(text);
    return rc;
}

void report_evaluate(const job_t *job, policy_t *policy, int episodes, double *mean, double *std) {
    const env_class_t *cls = env_find(job->env.id);
    int N = job->env.n_envs < episodes ? job->env.n_envs : episodes, od = cls->obs_dim;
    int ad = cls->act.discrete ? 1 : cls->act.n;
    env_t **envs = mallocCheck(sizeof(env_t *) * N);
    float *obs = mallocCheck(sizeof(float) * (size_t)N * od), *obsn = mallocCheck(sizeof(float) * (size_t)N * od);
    float *act = mallocCheck(sizeof(float) * (size_t)N * ad);
    double *ret = callocCheck(N, sizeof(double)), *all = mallocCheck(sizeof(double) * episodes);
    int *remaining = mallocCheck(sizeof(int) * N), done = 0;
    char err[256];
    for (int i = 0; i < N; i++) {
        envs[i] = env_new(cls->id, job->run.seed * 7919 + 1000003 + i, err, sizeof err);
        env_reset(envs[i], obs + (size_t)i * od);
        remaining[i] = episodes / N + (i < episodes % N);
    }
    while (done < episodes) {
        policy_observe(policy, obs, N, 0, obsn);
        policy_act(policy, obsn, N, NULL, 1, act, NULL, NULL);
        for (int i = 0; i < N; i++) {
            if (remaining[i] == 0) continue;
            int term, trunc;
            ret[i] += env_step(envs[i], act + (size_t)i * ad, obs + (size_t)i * od, &term, &trunc);
            if (term || trunc) {
                all[done++] = ret[i];
                ret[i] = 0;
                remaining[i]--;
                env_reset(envs[i], obs + (size_t)i * od);
            }
        }
    }
    double m = 0, v = 0;
    for (int i = 0; i < episodes; i++) m += all[i];
    m /= episodes;
    for (int i = 0; i < episodes; i++) v += (all[i] - m) * (all[i] - m);
    *mean = m;
    *std = sqrt(v / episodes);
    for (int i = 0; i < N; i++) env_destroy(&envs[i]);
    free(envs);
    free(obs);
    free(obsn);
    free(act);
    free(ret);
    free(all);
    free(remaining);
}

int report_metrics_truncate(const char *path, long long keep, long long *kept, char *err, size_t errlen) {
    *kept = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *text = NULL, *line = NULL;
    size_t text_len = 0, cap = 0;
    FILE *out = memstream(&text, &text_len);
    ssize_t n;
    long long dropped = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        /* A line counts only when whole (newline-terminated), valid, and the
         * next iteration in order. */
        json_t *doc = line[n - 1] == '\n' ? json_parse(line, (size_t)n - 1, NULL, 0) : NULL;
        long long it = -1;
        if (doc && json_int(json_get(doc, "iteration"), &it) == 0 && it == *kept && it < keep) {
            fwrite(line, 1, (size_t)n, out);
            (*kept)++;
        } else {
            dropped++;
        }
        json_destroy(&doc);
    }
    free(line);
    fclose(f);
    fclose(out);
    int rc = 0;
    if (dropped) log_info("%s: dropped %lld line(s) written after the checkpoint", path, dropped);
    if (*kept < keep)
        log_warn("%s: holds %lld of the %lld iterations before the checkpoint; the rest are lost", path, *kept, keep);
    if (dropped && write_file_atomic(path, text, text_len) != 0) {
        snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(text);
    return rc;
}
