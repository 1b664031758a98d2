/* report.c - see report.h. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "json.h"
#include "util.h"

void report_metrics(FILE *f, const metric_t *m, size_t n) {
    char num[32];
    for (size_t i = 0; i < n; i++) {
        double v = m[i].value;
        if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
            snprintf(num, sizeof num, "%.0f", v);
        else
            json_format_number(num, sizeof num, v);
        fprintf(f, "%s\"%s\":%s", i ? "," : "", m[i].key, num);
    }
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
    FILE *out = open_memstream(&text, &text_len);
    if (!out) {
        log_error("%s:%d: open_memstream: %s", __FILE__, __LINE__, strerror(errno));
        exit(1);
    }
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
