/* job.h - a job: everything a run needs, loaded from an INI file.
 *
 * Owns: the job_t struct, its defaults, the INI parser (inih), `--set
 * section.key=value` overrides, validation, and writing the resolved config.
 * Every key is in one table in core/job.c, which is the single source for
 * parsing, printing and docs/config.md (a test checks the doc names every key).
 *
 * Invariant: a job_t that job_load()/job_set()/job_validate() accepted is
 * complete and in range; an unknown section or key, or a bad value, is an
 * error naming it and where ("jobs/x.ini:12: [ppo] lr: expected a number > 0,
 * got 'abc'").
 */
#ifndef RLHF_JOB_H
#define RLHF_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JOB_MAX_LAYERS 8
#define JOB_STR 256

typedef enum { ACT_TANH = 0, ACT_RELU = 1 } job_act_t;
typedef enum { FEEDBACK_TEACHER = 0, FEEDBACK_TRUE_REWARD = 1, FEEDBACK_HUMAN = 2 } job_feedback_t;
typedef enum { SELECT_RANDOM = 0, SELECT_DISAGREEMENT = 1 } job_select_t;
/* Query kinds, a bit set: a job may mix them. */
enum { QUERY_PAIR = 1, QUERY_RATING = 2, QUERY_RANKING = 4 };

typedef struct {
    struct {
        char id[JOB_STR];           /* env.id: "CartPole-v1" */
        int n_envs;                 /* env.n_envs: environments per rollout process */
    } env;
    struct {
        int hidden[JOB_MAX_LAYERS]; /* policy.hidden: "64,64" */
        int n_hidden;
        job_act_t activation;       /* policy.activation: tanh | relu */
        double log_std_init;        /* policy.log_std_init: Gaussian heads */
    } policy;
    struct {
        int n_steps;                /* ppo.n_steps: steps per env per iteration */
        int epochs;                 /* ppo.epochs */
        int minibatch;              /* ppo.minibatch: samples per minibatch */
        double lr;                  /* ppo.lr */
        int anneal_lr;              /* ppo.anneal_lr: linear to 0 */
        double gamma;               /* ppo.gamma */
        double lambda;              /* ppo.lambda: GAE */
        double clip;                /* ppo.clip */
        double ent_coef;            /* ppo.ent_coef */
        double vf_coef;             /* ppo.vf_coef */
        double max_grad_norm;       /* ppo.max_grad_norm */
        int norm_obs;               /* ppo.norm_obs: running observation normalisation */
        int norm_reward;            /* ppo.norm_reward: true reward / running std of the discounted return */
        int norm_learned_reward;    /* ppo.norm_learned_reward: the same for the (normalised) learned reward */
        double target_kl;           /* ppo.target_kl: stop epochs early; 0 = off */
    } ppo;
    struct {
        int members;                /* reward.members: ensemble size K */
        int hidden[JOB_MAX_LAYERS]; /* reward.hidden */
        int n_hidden;
        job_act_t activation;       /* reward.activation */
        double lr;                  /* reward.lr */
        int epochs;                 /* reward.epochs: passes over the labels per update */
        int batch;                  /* reward.batch: queries per minibatch */
        double weight_decay;        /* reward.weight_decay: L2 */
        double noise;               /* reward.noise: Christiano's uniform-response probability */
        int bootstrap;              /* reward.bootstrap: resample labels per member */
    } reward;
    struct {
        job_feedback_t mode;        /* feedback.mode: teacher | true-reward | human */
        int labels;                 /* feedback.labels: the label budget */
        double initial_frac;        /* feedback.initial_frac: of the budget before RL starts */
        double label_until;         /* feedback.label_until: fraction of run.total_steps by which all labels are asked */
        int segment_len;            /* feedback.segment_len: steps per segment */
        int query_kinds;            /* feedback.query: pair | rating | ranking, '+'-joined to mix */
        int rank_k;                 /* feedback.rank_k: segments per ranking */
        job_select_t select;        /* feedback.select: random | disagreement */
        int pool_factor;            /* feedback.pool_factor: candidates per query for disagreement */
        int rounds;                 /* feedback.rounds: labelling rounds after the initial one */
        char teacher[JOB_STR];      /* feedback.teacher: teacher spec (see teacher.h) */
        int redundancy;             /* feedback.redundancy: distinct labelers per query */
        double undo_s;              /* feedback.undo_s: undo window of an HTTP label, s */
    } feedback;
    struct {
        int heartbeat_ms;           /* coordinator.heartbeat_ms: heartbeat interval, both ways */
        int liveness;               /* coordinator.liveness: silent intervals before a peer is dead */
        int learner_timeout_ms;     /* coordinator.learner_timeout_ms: silence before the learner is dead */
        int max_policy_lag;         /* coordinator.max_policy_lag: older trajectory batches are dropped */
        int lease_ms;               /* coordinator.lease_ms: a query's lease on its labeler */
        int learner_queue;          /* coordinator.learner_queue: batches held for the learner */
        int rollout_credit;         /* coordinator.rollout_credit: batches in flight per rollout worker */
        int label_resend_ms;        /* coordinator.label_resend_ms: a labeler resends an unacknowledged label */
        int http_port;              /* coordinator.http_port: labelers' HTTP API; 0 = none */
        char http_bind[JOB_STR];    /* coordinator.http_bind: its address */
        int queue_max;              /* coordinator.queue_max: open queries at most */
    } coordinator;
    struct {
        long long total_steps;      /* run.total_steps: env steps */
        uint64_t seed;              /* run.seed */
        char out[JOB_STR * 4];      /* run.out: run directory; "" = runs/<env>-<seed>-<time> */
        int eval_episodes;          /* run.eval_episodes: deterministic evaluation at the end */
    } run;
    struct {
        int curve;                  /* security.curve: `rlhf run` makes keys and runs every link over CURVE */
        char keys_dir[JOB_STR * 4]; /* security.keys_dir: where; "" = <run directory>/keys */
    } security;
} job_t;

void job_defaults(job_t *job);

/* Loads path over the current contents (call job_defaults first). Returns 0,
 * or -1 with err naming the file, line, section and key. */
int job_load(job_t *job, const char *path, char *err, size_t errlen);

/* Like job_load() from the INI text itself (e.g. a JobConfig that came over
 * the wire); name stands for the file in errors. */
int job_load_text(job_t *job, const char *text, const char *name, char *err, size_t errlen);

/* job_write() into a malloc'd NUL-terminated string (the caller frees it):
 * the text a JobConfig carries. */
char *job_write_text(const job_t *job);

/* Applies one override "section.key=value". Returns 0 or -1 with err. */
int job_set(job_t *job, const char *assignment, char *err, size_t errlen);

/* Applies one of the options every command that runs a job takes:
 * --seed N, --out DIR, --feedback MODE, --set section.key=value. Returns 1
 * when applied, 0 when opt is none of them, -1 with err on a bad value
 * (naming the option, or the override for --set). */
int job_option(job_t *job, const char *opt, const char *val, char *err, size_t errlen);

/* Cross-field checks (e.g. minibatch <= n_envs * n_steps). Returns 0 or -1. */
int job_validate(const job_t *job, char *err, size_t errlen);

/* Writes the resolved job as an INI file that job_load() reads back to the
 * same job_t. */
void job_write(const job_t *job, FILE *f);

/* Calls fn for every key, in table order (for docs and tests). */
void job_each_key(void (*fn)(const char *section, const char *key, const char *doc, void *arg), void *arg);

#endif
