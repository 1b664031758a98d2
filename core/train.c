/* train.c - the single-process RLHF loop (see train.h).
 *
 * One iteration:
 *   1. act: T steps of N environments with the current policy (actor.c);
 *      the batch's episodes are followed into a ring of recent episodes
 *      that segments are cut from (episodes.c);
 *   2. feedback: when the label schedule says so, select queries (query.c),
 *      let the scripted teacher answer, and refit the reward model;
 *   3. learn: rewards (learned and normalised, or true), GAE and PPO
 *      (learner.c).
 * The teacher is the only code that reads the true reward in teacher mode;
 * the metrics read it for reporting. The distributed runtime splits exactly
 * these pieces over processes. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor.h"
#include "blas.h"
#include "env.h"
#include "episodes.h"
#include "json.h"
#include "learner.h"
#include "query.h"
#include "teacher.h"
#include "util.h"

#define RECENT_EPISODES 64

/* Labels to ask now: the schedule's target at this many env steps, less
 * those answered. The target is initial_frac of the budget at the start,
 * then linear in env steps up to the whole budget at label_until. */
static int labels_due(const job_t *job, long long env_steps, int answered) {
    double until = job->feedback.label_until * (double)job->run.total_steps;
    double frac = job->feedback.initial_frac +
                  (1 - job->feedback.initial_frac) * fmin(1.0, (double)env_steps / fmax(until, 1.0));
    int target = (int)ceil(frac * job->feedback.labels - 1e-9);
    if (target > job->feedback.labels) target = job->feedback.labels;
    return target - answered;
}

/* The teacher answers one query; returns 0 with the label filled, or -1 for
 * a "can't tell" (no label, but the query was answered). */
static int teacher_answer(const teacher_t *t, const query_t *q, const segstore_t *segs, rng_t *rng, label_t *lb) {
    int T = segs->T;
    const float *rewards[LABEL_MAX_K];
    for (int j = 0; j < q->k; j++) rewards[j] = segstore_true_r(segs, q->seg[j]);
    memset(lb, 0, sizeof *lb);
    lb->kind = q->kind;
    lb->k = q->k;
    if (q->kind == QUERY_PAIR) {
        pref_t p = teacher_pair(t, rewards[0], rewards[1], T, rng);
        if (p == PREF_CANT_TELL) return -1;
        lb->seg[0] = q->seg[0];
        lb->seg[1] = q->seg[1];
        lb->pref = p == PREF_LEFT ? 1.0f : p == PREF_RIGHT ? 0.0f : 0.5f;
    } else if (q->kind == QUERY_RATING) {
        lb->rating = teacher_rating(t, rewards[0], T, rng);
        if (lb->rating == 0) return -1;
        lb->seg[0] = q->seg[0];
    } else {
        int order[LABEL_MAX_K];
        if (teacher_ranking(t, rewards, q->k, T, rng, order) != 0) return -1;
        for (int j = 0; j < q->k; j++) lb->seg[j] = q->seg[order[j]];
    }
    return 0;
}

struct metric {
    const char *key;
    double value;
};

/* The members of a JSON object, comma separated (the caller writes the
 * braces); whole numbers as integers, non-finite values as null. */
static void write_metrics(FILE *f, const struct metric *m, size_t n) {
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

static FILE *open_in(const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return f;
}

/* Deterministic policy on fresh environments: env i plays episodes i, i+N,
 * ... so that short episodes are not over-counted. */
static void evaluate(const job_t *job, policy_t *policy, int episodes, double *mean, double *std) {
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

int train_run(const job_t *job, const char *out_dir, int progress, train_result_t *res, char *err, size_t errlen) {
    double t0 = now_s();
    teacher_t teacher;
    teacher_oracle(&teacher);
    if (job->feedback.mode == FEEDBACK_HUMAN) {
        snprintf(err, errlen, "feedback.mode = human needs people answering queries, which the single-process "
                              "loop has none of; use teacher or true-reward");
        return -1;
    }
    if (job->feedback.mode == FEEDBACK_TEACHER && teacher_parse(job->feedback.teacher, &teacher, err, errlen) != 0)
        return -1;
    if (mkdir_p(out_dir) != 0) {
        snprintf(err, errlen, "cannot create run directory %s: %s", out_dir, strerror(errno));
        return -1;
    }
    FILE *cfg = open_in(out_dir, "config.ini", err, errlen);
    if (!cfg) return -1;
    job_write(job, cfg);
    fclose(cfg);
    actor_t *actor = actor_new(job->env.id, job->env.n_envs, job->run.seed, err, errlen);
    if (!actor) return -1;
    learner_t *l = learner_new(job, err, errlen);
    FILE *metrics = l ? open_in(out_dir, "metrics.jsonl", err, errlen) : NULL;
    if (!metrics) {
        learner_destroy(&l);
        actor_destroy(&actor);
        return -1;
    }
    const env_class_t *cls = actor_env_class(actor);
    int T = job->ppo.n_steps, N = job->env.n_envs, seg_len = job->feedback.segment_len;
    /* Ratings need a return range: unless the spec names one, the
     * environment's per-step reward bounds over a whole segment. */
    if (!strstr(job->feedback.teacher, "lo=")) teacher.rating_lo = cls->reward_lo * seg_len;
    if (!strstr(job->feedback.teacher, "hi=")) teacher.rating_hi = cls->reward_hi * seg_len;
    rng_t root, rng_act, rng_feedback, rng_teacher;
    rng_seed(&root, job->run.seed);
    rng_split(&root, 2, &rng_act);
    rng_split(&root, 4, &rng_feedback);
    rng_split(&root, 5, &rng_teacher);
    traj_t *batch = traj_new(T, N, l->obs_dim, l->act_dim);
    episodes_t *eps = episodes_new(l->obs_dim, l->act_dim, cls->max_steps, RECENT_EPISODES);
    segstore_t *asked_segs = segstore_new(seg_len, l->obs_dim, l->act_dim);
    query_t *queries = NULL;
    int answered = 0, next_kind = 0;
    long long env_steps = 0, per_iter = (long long)T * N;
    int iterations = (int)((job->run.total_steps + per_iter - 1) / per_iter);
    double last_print = 0;
    for (int it = 0; it < iterations; it++) {
        double ts = now_s();
        actor_run(actor, l->policy, &rng_act, batch);
        episodes_add(eps, 0, batch);
        env_steps += per_iter;
        double t_roll = now_s() - ts;

        ts = now_s();
        int asked = 0;
        if (l->rm) {
            /* Ask in rounds: the initial batch, then about labels / rounds at
             * a time, so the reward model is refit a bounded number of times. */
            int due = labels_due(job, env_steps, answered);
            int round = (int)ceil(job->feedback.labels * (1 - job->feedback.initial_frac) / job->feedback.rounds);
            int left = job->feedback.labels - answered;
            if (due > 0 && (answered == 0 || due >= round || due == left)) {
                queries = reallocCheck(queries, sizeof(query_t) * due);
                asked_segs->n = 0;
                asked = query_make(job, eps, l->rm, due, &next_kind, &rng_feedback, asked_segs, queries);
                for (int q = 0; q < asked; q++) {
                    label_t lb;
                    answered++;
                    if (teacher_answer(&teacher, &queries[q], asked_segs, &rng_teacher, &lb) == 0)
                        learner_add_label(l, &lb, asked_segs);
                }
                if (asked > 0) learner_fit_reward(l);
            }
        }
        double t_reward = now_s() - ts;

        ts = now_s();
        double frac = 1.0 - (double)it / iterations;
        double lr = job->ppo.anneal_lr ? job->ppo.lr * frac : job->ppo.lr;
        ppo_stats_t ps;
        learner_update(l, batch, lr, &ps);
        double t_ppo = now_s() - ts;

        double true_ret = batch->episodes ? batch->return_sum / batch->episodes : NAN;
        /* Figures that do not exist yet (no episode ended, no reward model)
         * are null, never a sentinel number. */
        int no_rm = !l->rm || l->n_labels == 0;
        const struct metric m[] = {
            {"iteration", it},
            {"env_steps", (double)env_steps},
            {"labels", answered},
            {"labels_used", l->n_labels},
            {"asked", asked},
            {"rm_val_acc", no_rm || l->fit.val_acc < 0 ? NAN : l->fit.val_acc},
            {"rm_train_acc", no_rm ? NAN : l->fit.train_acc},
            {"rm_loss", no_rm ? NAN : l->fit.loss},
            {"r_absorbing", no_rm ? NAN : l->abs_n},
            {"reward_corr", no_rm ? NAN : l->reward_corr},
            {"true_return", true_ret},
            {"learned_return", no_rm ? NAN : l->learned_return},
            {"episodes", batch->episodes},
            {"entropy", ps.entropy},
            {"approx_kl", ps.approx_kl},
            {"clip_frac", ps.clip_frac},
            {"pg_loss", ps.pg_loss},
            {"v_loss", ps.v_loss},
            {"grad_norm", ps.grad_norm},
            {"lr", lr},
            {"t_rollout", t_roll},
            {"t_reward", t_reward},
            {"t_ppo", t_ppo},
            {"wall_s", now_s() - t0},
        };
        fputc('{', metrics);
        write_metrics(metrics, m, sizeof m / sizeof m[0]);
        fputs("}\n", metrics);
        double now = now_s();
        if (progress && (now - last_print > 0.25 || it == iterations - 1)) {
            last_print = now;
            char line[256];
            snprintf(line, sizeof line, "iter %d/%d  steps %lld  labels %d  rm_acc %.2f  return %.1f  entropy %.3f  %.1fs",
                     it + 1, iterations, env_steps, answered, l->fit.val_acc, true_ret, ps.entropy, now - t0);
            if (progress == 2)
                fprintf(stderr, "\r\033[K%s", line);
            else
                fprintf(stderr, "%s\n", line);
        }
    }
    if (progress == 2) fprintf(stderr, "\n");
    fclose(metrics);

    double mean = NAN, std = NAN;
    if (job->run.eval_episodes > 0) evaluate(job, l->policy, job->run.eval_episodes, &mean, &std);
    double wall = now_s() - t0;
    FILE *sum = open_in(out_dir, "summary.json", err, errlen);
    int rc = -1;
    if (sum) {
        fprintf(sum, "{\"env\":");
        json_write_string(sum, job->env.id, strlen(job->env.id));
        fprintf(sum, ",\"feedback\":\"%s\",\"seed\":%llu,\"blas_core\":", l->rm ? "teacher" : "true-reward",
                (unsigned long long)job->run.seed);
        json_write_string(sum, blas_corename(), strlen(blas_corename()));
        fputc(',', sum);
        const struct metric m[] = {
            {"labels", answered},
            {"labels_used", l->n_labels},
            {"env_steps", (double)env_steps},
            {"wall_s", wall},
            {"true_return_mean", mean},
            {"true_return_std", std},
            {"eval_episodes", job->run.eval_episodes},
            {"rm_val_acc", l->rm && l->fit.val_acc >= 0 ? l->fit.val_acc : NAN},
        };
        write_metrics(sum, m, sizeof m / sizeof m[0]);
        fputs("}\n", sum);
        fclose(sum);
        rc = 0;
    }
    if (res) {
        res->true_return_mean = mean;
        res->true_return_std = std;
        res->eval_episodes = job->run.eval_episodes;
        res->env_steps = env_steps;
        res->labels = answered;
        res->wall_s = wall;
    }
    free(queries);
    segstore_destroy(&asked_segs);
    episodes_destroy(&eps);
    traj_destroy(&batch);
    learner_destroy(&l);
    actor_destroy(&actor);
    return rc;
}
