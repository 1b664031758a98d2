/* env_replay.c - conformance replay of Gymnasium reference episodes.
 *
 * Owns: env_replay_file(). Reads JSON Lines, one episode a line (format in
 * tests/data/gymnasium/README.md), starts each episode with
 * env_set_state(init_state), applies the recorded actions in turn and
 * compares what comes back: observation, reward and the internal state
 * (when recorded) within an absolute tolerance, terminated and truncated
 * exactly. The report names the worst deviation and where it happened so a
 * near miss is visible even when everything passes. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "json.h"

typedef struct {
    double value;
    long episode, step;         /* step is 1-based: the n-th env_step */
    char field[32];             /* "obs[2]", "reward", "state[0]" */
} deviation_t;

typedef struct {
    double tol;
    long episodes, steps;
    long mismatched_steps;
    deviation_t worst;          /* over obs and reward */
    deviation_t worst_state;    /* over the internal state */
    char first_mismatch[256];
    char env_ids[256];          /* the distinct ids met, for the report */
} replay_t;

/* Fills err with "line N: " and the message; returns -1 for the caller. */
static int line_error(char *err, size_t errlen, long line_no, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int line_error(char *err, size_t errlen, long line_no, const char *fmt, ...) {
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "line %ld: ", line_no);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Reads an array of exactly n numbers. Returns 0, or -1 with why filled. */
static int read_numbers(const json_t *arr, double *out, int n, const char *name, char *why, size_t whylen) {
    if (!arr) {
        snprintf(why, whylen, "missing field \"%s\"", name);
        return -1;
    }
    if (json_type(arr) != JSON_ARRAY || json_size(arr) != (size_t)n) {
        if (json_type(arr) == JSON_ARRAY)
            snprintf(why, whylen, "field \"%s\" has %zu values, expected %d", name, json_size(arr), n);
        else
            snprintf(why, whylen, "field \"%s\" is a JSON %s, expected an array of %d numbers", name,
                     json_type_name(json_type(arr)), n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (json_number(json_at(arr, (size_t)i), &out[i]) < 0) {
            snprintf(why, whylen, "field \"%s\"[%d] is a JSON %s, expected a number", name, i,
                     json_type_name(json_type(json_at(arr, (size_t)i))));
            return -1;
        }
    }
    return 0;
}

static double deviation(double got, double want) {
    if (got == want) return 0.0;                /* also equal infinities */
    if (isnan(got) && isnan(want)) return 0.0;
    double d = fabs(got - want);
    return isnan(d) ? INFINITY : d;             /* NaN against a number */
}

static void note_deviation(deviation_t *worst, double d, long episode, long step, const char *field, int index) {
    if (!(d > worst->value) && worst->step > 0) return;
    worst->value = d;
    worst->episode = episode;
    worst->step = step;
    if (index >= 0) snprintf(worst->field, sizeof worst->field, "%s[%d]", field, index);
    else snprintf(worst->field, sizeof worst->field, "%s", field);
}

static void note_mismatch(replay_t *r, int *step_bad, long episode, long step, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void note_mismatch(replay_t *r, int *step_bad, long episode, long step, const char *fmt, ...) {
    if (!*step_bad) r->mismatched_steps++;
    *step_bad = 1;
    if (r->first_mismatch[0]) return;
    int n = snprintf(r->first_mismatch, sizeof r->first_mismatch, "episode %ld step %ld: ", episode, step);
    if (n < 0 || (size_t)n >= sizeof r->first_mismatch) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first_mismatch + n, sizeof r->first_mismatch - (size_t)n, fmt, ap);
    va_end(ap);
}

static void remember_id(replay_t *r, const char *id) {
    size_t idlen = strlen(id), have = strlen(r->env_ids);
    for (const char *p = r->env_ids; (p = strstr(p, id)) != NULL; p += idlen)
        if ((p == r->env_ids || p[-1] == ' ') && (p[idlen] == ',' || p[idlen] == '\0')) return;
    snprintf(r->env_ids + have, sizeof r->env_ids - have, "%s%s", have ? ", " : "", id);
}

/* Replays one episode (one parsed line). Returns 0, or -1 with err filled
 * when the line does not describe an episode. */
static int replay_episode(replay_t *r, const json_t *doc, long line_no, char *err, size_t errlen) {
    char why[160];
    if (json_type(doc) != JSON_OBJECT)
        return line_error(err, errlen, line_no, "expected an episode object, found a JSON %s",
                          json_type_name(json_type(doc)));
    const json_t *idv = json_get(doc, "env");
    const char *id = json_string(idv);
    if (!idv) return line_error(err, errlen, line_no, "missing field \"env\"");
    if (!id) return line_error(err, errlen, line_no, "field \"env\" is a JSON %s, expected a string",
                               json_type_name(json_type(idv)));
    char env_err[256];
    env_t *env = env_new(id, 0, env_err, sizeof env_err);
    if (!env) return line_error(err, errlen, line_no, "%s", env_err);
    const env_class_t *cls = env_class(env);

    long episode = r->episodes;
    long long k;
    if (json_int(json_get(doc, "episode"), &k) == 0) episode = (long)k;

    int rc = -1;
    double init_state[ENV_MAX_DIM];
    const json_t *steps = json_get(doc, "steps");
    if (read_numbers(json_get(doc, "init_state"), init_state, cls->state_dim, "init_state", why, sizeof why) < 0) {
        line_error(err, errlen, line_no, "%s", why);
        goto done;
    }
    if (!steps) {
        line_error(err, errlen, line_no, "missing field \"steps\"");
        goto done;
    }
    if (json_type(steps) != JSON_ARRAY) {
        line_error(err, errlen, line_no, "field \"steps\" is a JSON %s, expected an array",
                   json_type_name(json_type(steps)));
        goto done;
    }

    float obs[ENV_MAX_DIM];
    env_set_state(env, init_state, obs);
    for (size_t s = 0; s < json_size(steps); s++) {
        const json_t *st = json_at(steps, s);
        long step_no = (long)s + 1;
        if (json_type(st) != JSON_OBJECT) {
            line_error(err, errlen, line_no, "step %ld is a JSON %s, expected an object", step_no,
                       json_type_name(json_type(st)));
            goto done;
        }
        /* The action: an integer index, or a list of floats (float32 values). */
        float action[ENV_MAX_DIM];
        const json_t *av = json_get(st, "action");
        if (!av) {
            line_error(err, errlen, line_no, "step %ld: missing field \"action\"", step_no);
            goto done;
        }
        if (cls->act.discrete) {
            if (json_int(av, &k) < 0 || k < 0 || k >= cls->act.n) {
                line_error(err, errlen, line_no, "step %ld: field \"action\" must be an integer in [0, %d) for %s",
                           step_no, cls->act.n, cls->id);
                goto done;
            }
            action[0] = (float)k;
        } else {
            double a[ENV_MAX_DIM];
            if (read_numbers(av, a, cls->act.n, "action", why, sizeof why) < 0) {
                line_error(err, errlen, line_no, "step %ld: %s", step_no, why);
                goto done;
            }
            for (int i = 0; i < cls->act.n; i++) action[i] = (float)a[i];
        }
        double want_obs[ENV_MAX_DIM], want_state[ENV_MAX_DIM], want_reward;
        int want_term, want_trunc;
        const json_t *statev = json_get(st, "state");
        if (read_numbers(json_get(st, "obs"), want_obs, cls->obs_dim, "obs", why, sizeof why) < 0 ||
            (statev && read_numbers(statev, want_state, cls->state_dim, "state", why, sizeof why) < 0)) {
            line_error(err, errlen, line_no, "step %ld: %s", step_no, why);
            goto done;
        }
        static const char *const flag_names[2] = {"terminated", "truncated"};
        int *flag_out[2] = {&want_term, &want_trunc};
        for (int f = 0; f < 2; f++) {
            const json_t *fv = json_get(st, flag_names[f]);
            if (json_bool(fv, flag_out[f]) < 0) {
                line_error(err, errlen, line_no, fv ? "step %ld: field \"%s\" must be true or false"
                                                    : "step %ld: missing field \"%s\"",
                           step_no, flag_names[f]);
                goto done;
            }
        }
        const json_t *rv = json_get(st, "reward");
        if (json_number(rv, &want_reward) < 0) {
            line_error(err, errlen, line_no, rv ? "step %ld: field \"reward\" must be a number"
                                                : "step %ld: missing field \"reward\"", step_no);
            goto done;
        }

        int term, trunc, bad = 0;
        double reward = env_step(env, action, obs, &term, &trunc);
        r->steps++;
        for (int i = 0; i < cls->obs_dim; i++) {
            double d = deviation((double)obs[i], want_obs[i]);
            note_deviation(&r->worst, d, episode, step_no, "obs", i);
            if (!(d <= r->tol))
                note_mismatch(r, &bad, episode, step_no, "obs[%d] %.17g, expected %.17g", i, (double)obs[i],
                              want_obs[i]);
        }
        double d = deviation(reward, want_reward);
        note_deviation(&r->worst, d, episode, step_no, "reward", -1);
        if (!(d <= r->tol))
            note_mismatch(r, &bad, episode, step_no, "reward %.17g, expected %.17g", reward, want_reward);
        if (term != want_term)
            note_mismatch(r, &bad, episode, step_no, "terminated %s, expected %s", term ? "true" : "false",
                          want_term ? "true" : "false");
        if (trunc != want_trunc)
            note_mismatch(r, &bad, episode, step_no, "truncated %s, expected %s", trunc ? "true" : "false",
                          want_trunc ? "true" : "false");
        if (statev) {
            double state[ENV_MAX_DIM];
            env_get_state(env, state);
            for (int i = 0; i < cls->state_dim; i++) {
                d = deviation(state[i], want_state[i]);
                note_deviation(&r->worst_state, d, episode, step_no, "state", i);
                if (!(d <= r->tol))
                    note_mismatch(r, &bad, episode, step_no, "state[%d] %.17g, expected %.17g", i, state[i],
                                  want_state[i]);
            }
        }
    }
    r->episodes++;
    remember_id(r, cls->id);
    rc = 0;
done:
    env_destroy(&env);
    return rc;
}

static void print_deviation(FILE *out, const char *label, const deviation_t *d) {
    if (d->step == 0) {
        fprintf(out, "%s: none (nothing compared)\n", label);
        return;
    }
    if (d->value == 0) {
        fprintf(out, "%s: 0 (every compared value identical)\n", label);
        return;
    }
    fprintf(out, "%s: %.3g (episode %ld, step %ld, %s)\n", label, d->value, d->episode, d->step, d->field);
}

int env_replay_file(const char *path, double tol, FILE *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        if (err) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    replay_t r = {.tol = tol};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long line_no = 0;
    int rc = 0;
    char why[512], msg[600] = "";
    while ((len = getline(&line, &cap, f)) >= 0) {
        line_no++;
        size_t n = (size_t)len, blank = 0;
        while (blank < n && line[blank] && strchr(" \t\r\n", line[blank])) blank++;
        if (blank == n) continue;
        /* Python's json module writes NaN and Infinity; a diverged reference
         * may hold them, and they compare like any other value. */
        json_t *doc = json_parse_flags(line, n, JSON_ALLOW_NONFINITE, why, sizeof why);
        if (!doc) {
            rc = line_error(msg, sizeof msg, line_no, "malformed JSON: %s", why);
            break;
        }
        rc = replay_episode(&r, doc, line_no, msg, sizeof msg);
        json_destroy(&doc);
        if (rc < 0) break;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(msg, sizeof msg, "read error: %s", strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc == 0 && r.episodes == 0) {
        snprintf(msg, sizeof msg, "no episodes in the file");
        rc = -1;
    }
    if (rc < 0) {
        if (err) snprintf(err, errlen, "%s: %s", path, msg);
        return -1;
    }
    if (out) {
        fprintf(out, "replay %s (%s): %ld episodes, %ld steps, tolerance %g\n", path, r.env_ids, r.episodes,
                r.steps, tol);
        print_deviation(out, "worst deviation (obs, reward)", &r.worst);
        if (r.worst_state.step > 0) print_deviation(out, "worst state deviation", &r.worst_state);
        if (r.mismatched_steps > 0) {
            fprintf(out, "mismatched steps: %ld; first at %s\n", r.mismatched_steps, r.first_mismatch);
            fprintf(out, "MISMATCH\n");
        } else {
            fprintf(out, "OK\n");
        }
    }
    return r.mismatched_steps > 0 ? 1 : 0;
}
