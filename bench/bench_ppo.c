/* bench_ppo.c - PPO throughput on the true reward, one core: env steps per
 * second of the whole training loop (rollout + GAE + update) on
 * CartPole-v1, through train_run() itself so that what is timed is what a
 * user runs.
 *
 * Two configurations:
 *   - jobs/cartpole.ini's (8 envs x 32 steps, minibatch 256, 20 epochs);
 *   - Stable-Baselines3's PPO defaults (1 env x 2048 steps, minibatch 64,
 *     10 epochs, 64x64 tanh, lr 3e-4 constant, gamma 0.99, lambda 0.95, no
 *     observation normalisation), the configuration of the reference figure:
 *     SB3 ran 3,372 env steps/s on this machine, printed beside ours.
 * For each: the loop's steps/s (from metrics.jsonl's per-iteration phase
 * times, so setup and the final evaluation are left out), the split between
 * rollout, reward and PPO, and the rollout alone (environments plus the
 * batched policy forward, no update) as steps/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "job.h"
#include "json.h"
#include "train.h"
#include "util.h"

#define SB3_STEPS_PER_S 3372.0

typedef struct {
    long long env_steps;
    int iterations;
    double t_rollout, t_reward, t_ppo;
} phases_t;

/* Sums the phase times over metrics.jsonl. Returns 0 or -1. */
static int read_phases(const char *dir, phases_t *ph) {
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    memset(ph, 0, sizeof *ph);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        char err[128];
        json_t *m = json_parse(line, (size_t)len, err, sizeof err);
        double r, w, p, s;
        if (!m || json_number(json_get(m, "t_rollout"), &r) || json_number(json_get(m, "t_reward"), &w) ||
            json_number(json_get(m, "t_ppo"), &p) || json_number(json_get(m, "env_steps"), &s)) {
            fprintf(stderr, "bench_ppo: %s: line %d unreadable\n", path, ph->iterations + 1);
            json_destroy(&m);
            rc = -1;
            break;
        }
        ph->t_rollout += r;
        ph->t_reward += w;
        ph->t_ppo += p;
        ph->env_steps = (long long)s;
        ph->iterations++;
        json_destroy(&m);
    }
    free(line);
    fclose(f);
    return rc;
}

static void remove_run(const char *dir) {
    static const char *const files[] = {"config.ini", "metrics.jsonl", "summary.json", NULL};
    char path[1200];
    for (const char *const *f = files; *f; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, *f);
        unlink(path);
    }
    rmdir(dir);
}

/* Runs the job and prints one row. Returns 0 or -1. */
static int bench(const char *name, job_t *job) {
    char err[1024], dir[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rlhf-bench-ppo.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    /* One evaluation episode: the evaluation is not part of the loop and
     * would otherwise cost as much as a good part of the training. */
    const char *const common[] = {"feedback.mode=true-reward", "run.eval_episodes=1", "run.seed=1", NULL};
    for (const char *const *a = common; *a; a++)
        if (job_set(job, *a, err, sizeof err) != 0) {
            fprintf(stderr, "bench_ppo: %s\n", err);
            return -1;
        }
    if (job_validate(job, err, sizeof err) != 0) {
        fprintf(stderr, "bench_ppo: %s: %s\n", name, err);
        return -1;
    }
    train_result_t res;
    if (train_run(job, dir, 0, &res, err, sizeof err) != 0) {
        fprintf(stderr, "bench_ppo: %s: %s\n", name, err);
        return -1;
    }
    phases_t ph;
    if (read_phases(dir, &ph) != 0) {
        remove_run(dir);
        return -1;
    }
    remove_run(dir);
    double loop = ph.t_rollout + ph.t_reward + ph.t_ppo;
    double rate = ph.env_steps / loop;
    printf("%-40s %9lld %7.2f %9.0f %6.2fx %9.2f %8.2f %7.2f %12.0f   %6.1f\n", name, ph.env_steps, loop, rate,
           rate / SB3_STEPS_PER_S, ph.t_rollout, ph.t_reward, ph.t_ppo, ph.env_steps / ph.t_rollout,
           res.true_return_mean);
    return 0;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    char err[1024];
    printf("PPO on CartPole-v1, true reward, one core (OpenBLAS kernel %s); SB3 reference %.0f env steps/s\n",
           blas_corename(), SB3_STEPS_PER_S);
    printf("%-40s %9s %7s %9s %7s %9s %8s %7s %12s   %6s\n", "config", "env steps", "loop s", "steps/s", "vs SB3",
           "rollout s", "reward s", "ppo s", "rollout st/s", "return");

    /* jobs/cartpole.ini as it is now: the benchmark follows the job file. */
    static job_t job;
    job_defaults(&job);
    if (job_load(&job, "jobs/cartpole.ini", err, sizeof err) != 0) {
        fprintf(stderr, "bench_ppo: %s (run from the repository root)\n", err);
        return 1;
    }
    char label[128];
    snprintf(label, sizeof label, "jobs/cartpole.ini (%dx%d, mb %d, %d ep)", job.env.n_envs, job.ppo.n_steps,
             job.ppo.minibatch, job.ppo.epochs);
    if (bench(label, &job) != 0) return 1;

    /* SB3's PPO("MlpPolicy", "CartPole-v1") defaults. 50 iterations of 2048
     * steps: a stable rate in a couple of seconds. */
    static const char *const sb3[] = {
        "env.id=CartPole-v1", "env.n_envs=1", "policy.hidden=64,64", "policy.activation=tanh",
        "ppo.n_steps=2048", "ppo.epochs=10", "ppo.minibatch=64", "ppo.lr=3e-4", "ppo.anneal_lr=false",
        "ppo.gamma=0.99", "ppo.lambda=0.95", "ppo.clip=0.2", "ppo.ent_coef=0", "ppo.vf_coef=0.5",
        "ppo.max_grad_norm=0.5", "ppo.norm_obs=false", "ppo.target_kl=0", "run.total_steps=102400", NULL,
    };
    job_defaults(&job);
    for (const char *const *a = sb3; *a; a++)
        if (job_set(&job, *a, err, sizeof err) != 0) {
            fprintf(stderr, "bench_ppo: %s\n", err);
            return 1;
        }
    if (bench("SB3 defaults (1x2048, mb 64, 10 ep)", &job) != 0) return 1;
    printf("\nsteps/s: env steps over the loop's time (rollout + reward + GAE and PPO update), setup and\n"
           "evaluation excluded; rollout st/s: the rollout phase alone (environments and policy forward).\n"
           "return: one deterministic evaluation episode after training (CartPole-v1 caps it at 500).\n");
    return 0;
}
