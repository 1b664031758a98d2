/* harness.c - the scaffolding the test programs share (see harness.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "json.h"
#include "util.h"

char tmp_dir[512];
char build_dir[256];
const char *harness_name = "test";

/* ---- files ------------------------------------------------------------------ */

char *slurp_n(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

char *slurp(const char *path) { return slurp_n(path, NULL); }

char *must_slurp(const char *path) {
    char *s = slurp_n(path, NULL);
    if (!s) fail_msg("cannot open %s: %s", path, strerror(errno));
    return s;
}

void check_run_logs(const char *run_dir, const char *const *want) {
    char path[1024];
    for (; *want; want++) {
        snprintf(path, sizeof path, "%s/logs/%s.log", run_dir, *want);
        if (access(path, F_OK) != 0) fail_msg("no log %s", path);
    }
    snprintf(path, sizeof path, "%s/logs", run_dir);
    DIR *d = opendir(path);
    if (!d) fail_msg("cannot open %s: %s", path, strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/logs/%s", run_dir, e->d_name);
        char *text = slurp(path);
        int bad = text && (strstr(text, "AddressSanitizer") || strstr(text, "LeakSanitizer") ||
                           strstr(text, "runtime error:"));
        if (bad) {
            closedir(d);
            fail_msg("%s: a sanitizer report:\n%s", path, text);
        }
        free(text);
    }
    closedir(d);
}

void spit_n(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s: %s", path, strerror(errno));
    fwrite(data, 1, n, f);
    fclose(f);
}

void spit(const char *path, const char *text) { spit_n(path, text, strlen(text)); }

const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmp_dir, name);
    return buf;
}

/* ---- a command's result ------------------------------------------------------ */

void result_free(result_t *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

void expect_status(const result_t *r, int status, const char *what) {
    if (r->status != status)
        fail_msg("%s: exit %d, expected %d\n--- stdout\n%s--- stderr\n%s", what, r->status, status, r->out, r->err);
}

void expect_in(const char *text, const char *needle, const char *what) {
    if (!strstr(text, needle)) fail_msg("%s: expected '%s' in:\n%s", what, needle, text);
}

/* ---- a run's metrics.jsonl ----------------------------------------------------- */

void check_metrics_lines(const char *metrics, long long batch, long long iterations, long long total,
                   long long max_labels) {
    char *all = slurp(metrics);
    assert_non_null(all);
    long long n = 0, prev_steps = -1;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        char err[256];
        json_t *m = json_parse(line, strlen(line), err, sizeof err);
        if (!m) fail_msg("%s line %lld: %s", metrics, n + 1, err);
        long long it = -1, steps = -1, labels = -1;
        assert_int_equal(json_int(json_get(m, "iteration"), &it), 0);
        assert_int_equal(json_int(json_get(m, "env_steps"), &steps), 0);
        assert_int_equal(json_int(json_get(m, "labels"), &labels), 0);
        json_destroy(&m);
        if (it != n) fail_msg("%s line %lld: iteration %lld, expected %lld", metrics, n + 1, it, n);
        if (prev_steps >= 0 && steps != prev_steps + batch)
            fail_msg("%s line %lld: env_steps %lld after %lld (batch %lld)", metrics, n + 1, steps, prev_steps, batch);
        assert_true(labels <= max_labels);
        prev_steps = steps;
        n++;
    }
    free(all);
    assert_int_equal(n, iterations);
    assert_int_equal(prev_steps, total);
}

/* ---- children in one process group ------------------------------------------ */

pid_t group;
char log_prefix[64];
child_t children[MAX_CHILDREN];
int n_children;

void kill_group(void) {
    if (group > 0) kill(-group, SIGKILL);
}

/* Only async-signal-safe calls: write(2) in pieces, no stdio. */
static void say_timed_out(const char *what) {
    static const char head[] = ": timed out";
    if (write(2, harness_name, strlen(harness_name)) < 0 || write(2, head, sizeof head - 1) < 0 ||
        write(2, what, strlen(what)) < 0)
        _exit(1);
}

void on_alarm_group(int sig) {
    (void)sig;
    kill_group();
    say_timed_out("; killing the children\n");
    _exit(1);
}

/* A leader that only waits: the group outlives any child we kill. */
void start_group(void) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        for (;;) pause();
    }
    setpgid(pid, pid);
    group = pid;
    n_children = 0;
}

void stop_group(void) {
    kill_group();
    if (group > 0) waitpid(group, NULL, 0);
    for (int i = 0; i < n_children; i++)
        if (!children[i].reaped) waitpid(children[i].pid, NULL, 0);
    group = 0;
    n_children = 0;
}

/* Starts argv[0] (a path under build_dir) with output to its log. */
child_t *spawn(const char *name, char *const argv[]) {
    assert_true(n_children < MAX_CHILDREN);
    child_t *c = &children[n_children++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->log, sizeof c->log, "%s/%s-%s.log", tmp_dir, log_prefix, name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, group);
        int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, group);
    c->pid = pid;
    return c;
}

/* Waits up to seconds for c to exit; returns 1 with c->status set. */
int wait_exit(child_t *c, double seconds) {
    double end = now_s() + seconds;
    while (!c->reaped) {
        pid_t r = waitpid(c->pid, &c->status, WNOHANG);
        if (r == c->pid) {
            c->reaped = 1;
            break;
        }
        if (now_s() > end) return 0;
        usleep(10000);
    }
    return 1;
}

int exited_with(const child_t *c, int code) {
    return c->reaped && WIFEXITED(c->status) && WEXITSTATUS(c->status) == code;
}

/* The whole log of a child (malloc'd, NUL-terminated). */
char *read_log(const child_t *c) {
    FILE *f = fopen(c->log, "r");
    if (!f) return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    if (n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    fclose(f);
    return s;
}

int log_count(const child_t *c, const char *needle) {
    char *s = read_log(c);
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    free(s);
    return n;
}

int log_has(const child_t *c, const char *needle) { return log_count(c, needle) > 0; }

/* 1 when one line of c's log holds both a and b. */
int log_line_has(const child_t *c, const char *a, const char *b) {
    char *s = read_log(c);
    int found = 0;
    for (char *line = strtok(s, "\n"); line && !found; line = strtok(NULL, "\n"))
        found = strstr(line, a) && strstr(line, b);
    free(s);
    return found;
}

void dump_logs(void) {
    for (int i = 0; i < n_children; i++) {
        char *s = read_log(&children[i]);
        size_t n = strlen(s);
        fprintf(stderr, "---- %s (%s) last lines:\n%s\n", children[i].name, children[i].log,
                n > 3000 ? s + n - 3000 : s);
        free(s);
    }
}

int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static double case_start;

int group_main_init(const char *name, const char *tag, unsigned alarm_s) {
    const char *tmp = getenv("RLHF_TEST_TMP"), *build = getenv("RLHF_BUILD");
    harness_name = name;
    snprintf(tmp_dir, sizeof tmp_dir, "%s/%s-%d", tmp ? tmp : "/tmp", tag, (int)getpid());
    snprintf(build_dir, sizeof build_dir, "%s", build ? build : "build");
    if (mkdir_p(tmp_dir) != 0) {
        fprintf(stderr, "cannot make %s\n", tmp_dir);
        return -1;
    }
    signal(SIGALRM, on_alarm_group);
    signal(SIGPIPE, SIG_IGN);
    alarm(alarm_s);
    atexit(kill_group);
    return 0;
}

int group_case_setup(void **state) {
    (void)state;
    case_start = now_s();
    return 0;
}

int group_case_teardown(void **state) {
    (void)state;
    stop_group();
    print_message("(%.1f s)\n", now_s() - case_start);
    return 0;
}

/* ---- processes from /proc ------------------------------------------------------ */

int proc_children(pid_t parent, pid_t *out, int max) {
    static int pids[65536], ppids[65536];
    int total = proc_table(pids, ppids, 65536), n = 0;
    for (int i = 0; i < total && n < max; i++)
        if (ppids[i] == parent) out[n++] = pids[i];
    return n;
}

/* ---- descendants ------------------------------------------------------------ */

pid_t seen[MAX_SEEN];
int n_seen;

/* Live (non-zombie) descendants of this process into out; returns how many. */
int descendants(pid_t *out, int max) { return proc_descendants(out, max); }

void note_descendants(void) {
    pid_t now[MAX_SEEN];
    int n = descendants(now, MAX_SEEN);
    for (int i = 0; i < n; i++) {
        int known = 0;
        for (int j = 0; j < n_seen && !known; j++) known = seen[j] == now[i];
        if (!known && n_seen < MAX_SEEN) seen[n_seen++] = now[i];
    }
}

void kill_descendants(void) {
    pid_t now[MAX_SEEN];
    int n = descendants(now, MAX_SEEN);
    for (int i = 0; i < n; i++) kill(now[i], SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

void on_alarm_descendants(int sig) {
    (void)sig;
    kill_descendants();
    say_timed_out("; killing every descendant\n");
    _exit(1);
}

void assert_none_left(double reap_s, int min_seen) {
    double end = now_s() + reap_s;   // orphans handed to us: reap them first
    pid_t now[MAX_SEEN];
    int n;
    while ((n = descendants(now, MAX_SEEN)) > 0 && now_s() < end) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        usleep(20000);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    if (n > 0) fail_msg("%d processes left behind (the first: pid %d)", n, (int)now[0]);
    for (int i = 0; i < n_seen; i++)
        if (kill(seen[i], 0) == 0) fail_msg("pid %d (seen during the run) is still alive", (int)seen[i]);
    assert_true(n_seen >= min_seen);   // we did watch the processes
}

void subreaper_main_init(const char *name, void (*on_alarm)(int)) {
    const char *b = getenv("RLHF_BUILD"), *t = getenv("RLHF_TEST_TMP");
    harness_name = name;
    snprintf(build_dir, sizeof build_dir, "%s", b && *b ? b : "build");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/%s.%d", t && *t ? t : "/tmp", name, (int)getpid());
    mkdir_p(tmp_dir);
    signal(SIGALRM, on_alarm);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
}

int descendants_teardown(void **state) {
    (void)state;
    kill_descendants();
    alarm(0);
    return 0;
}

/* ---- the cluster ------------------------------------------------------------ */

/* A small CartPole job: 128 env steps a batch, a few labelling rounds. */
void cluster_job(cluster_t *cl, const char *name, long long total_steps, int labels, const char *extra) {
    snprintf(cl->job, sizeof cl->job, "%s/%s.ini", tmp_dir, name);
    FILE *f = fopen(cl->job, "w");
    assert_non_null(f);
    fprintf(f,
            "[env]\nid = CartPole-v1\nn_envs = 4\n"
            "[policy]\nhidden = 32,32\n"
            "[ppo]\nn_steps = 32\nepochs = 3\nminibatch = 64\nlr = 1e-3\n"
            "[reward]\nmembers = 3\nhidden = 32,32\nepochs = 8\nbatch = 16\n"
            "[feedback]\nlabels = %d\ninitial_frac = 0.25\nlabel_until = 0.5\nsegment_len = 15\nrounds = 3\n"
            "query = pair+rating+ranking\nrank_k = 3\n"
            "[run]\ntotal_steps = %lld\nseed = 3\n%s",
            labels, total_steps, extra ? extra : "");
    fclose(f);
}

void cluster_init(cluster_t *cl, const char *name) {
    memset(cl, 0, sizeof *cl);
    snprintf(log_prefix, sizeof log_prefix, "%s", name);
    snprintf(cl->out, sizeof cl->out, "%s/%s-out", tmp_dir, name);
    snprintf(cl->endpoint, sizeof cl->endpoint, "tcp://127.0.0.1:%d", free_port());
    snprintf(cl->bin_coord, sizeof cl->bin_coord, "%s/bin/rlhf-coordinator", build_dir);
    snprintf(cl->bin_rollout, sizeof cl->bin_rollout, "%s/bin/rlhf-rollout", build_dir);
    snprintf(cl->bin_rlhf, sizeof cl->bin_rlhf, "%s/bin/rlhf", build_dir);
    start_group();
}

child_t *start_coordinator(cluster_t *cl, const char *name) {
    char *argv[16];
    int n = 0;
    argv[n++] = cl->bin_coord;
    argv[n++] = cl->job;
    argv[n++] = "--bind";
    argv[n++] = cl->endpoint;
    argv[n++] = "--out";
    argv[n++] = cl->out;
    if (cl->max_message[0]) argv[n++] = "--max-message", argv[n++] = cl->max_message;
    if (cl->curve_secret) {
        argv[n++] = "--curve-secret";
        argv[n++] = (char *)cl->curve_secret;
        argv[n++] = "--allow";
        argv[n++] = (char *)cl->allow;
    }
    argv[n] = NULL;
    return spawn(name, argv);
}

/* key/server: CURVE files, or NULL. */
child_t *start_rollout(cluster_t *cl, const char *id, const char *key, const char *server) {
    char *argv[12];
    int n = 0;
    argv[n++] = cl->bin_rollout;
    argv[n++] = "--coordinator";
    argv[n++] = cl->endpoint;
    argv[n++] = "--id";
    argv[n++] = (char *)id;
    if (key) argv[n++] = "--curve-secret", argv[n++] = (char *)key, argv[n++] = "--curve-server", argv[n++] = (char *)server;
    argv[n] = NULL;
    return spawn(id, argv);
}

/* ---- the learner, in this process ------------------------------------------- */

void (*tl_on_label)(const learnerlink_label_t *lb);

void tl_start(tlearner_t *t, const cluster_t *cl, const transport_keypair_t *keys, const char *server_pub) {
    memset(t, 0, sizeof *t);
    t->gate = 1;
    learnerlink_options_t o = {.endpoint = cl->endpoint, .keys = keys, .server_public_z85 = server_pub, .n_ranks = 1};
    char err[512];
    t->ll = learnerlink_new(&o, err, sizeof err);
    if (!t->ll) fail_msg("learnerlink_new: %s", err);
    double end = now_s() + 15;
    while (!learnerlink_job(t->ll) && now_s() < end)
        if (learnerlink_poll(t->ll, 50) < 0) fail_msg("learnerlink: %s", learnerlink_error(t->ll));
    if (!learnerlink_job(t->ll)) {
        dump_logs();
        fail_msg("no Welcome from the coordinator within 15 s");
    }
    t->job = *learnerlink_job(t->ll);
    t->l = learner_new(&t->job, err, sizeof err);
    assert_non_null(t->l);
    t->b = traj_new(t->job.ppo.n_steps, t->job.env.n_envs, t->l->obs_dim, t->l->act_dim);
}

void tl_free(tlearner_t *t) {
    learnerlink_destroy(&t->ll);
    learner_destroy(&t->l);
    traj_destroy(&t->b);
}

/* One turn of the learner loop: labels (refit at a round's end), then one
 * batch (PPO, new policy weights). */
void tl_step(tlearner_t *t, long timeout_ms) {
    int ev = learnerlink_poll(t->ll, timeout_ms);
    if (ev < 0) fail_msg("learnerlink: %s", learnerlink_error(t->ll));
    learnerlink_label_t lb;
    int refit = 0;
    while (learnerlink_next_label(t->ll, &lb) == 1) {
        t->answers++;
        if (tl_on_label) tl_on_label(&lb);
        if (lb.has_label) {
            learner_add_label(t->l, &lb.label, lb.segs);
            t->labels++;
        }
        refit |= lb.round_done;
    }
    if (refit && t->l->n_labels > 0) {
        learner_fit_reward(t->l);
        t->fits++;
        learnerlink_send_reward(t->ll, t->l->rm, ++t->rv);
    }
    if (t->gate && t->fits == 0) return;
    if (t->steps >= t->job.run.total_steps) return;
    if (learnerlink_next_batch(t->ll, t->b) == 1) {
        ppo_stats_t st;
        double frac = 1.0 - (double)t->steps / (double)t->job.run.total_steps;
        learner_update(t->l, t->b, t->job.ppo.lr * frac, &st);
        t->steps += (long long)t->b->T * t->b->N;
        t->updates++;
        if (t->b->policy_version > t->max_batch_version) t->max_batch_version = t->b->policy_version;
        snprintf(t->last_worker, sizeof t->last_worker, "%s", learnerlink_batch_worker(t->ll));
        if (t->watch && strcmp(t->watch, t->last_worker) == 0 && t->watch_batches++ == 0)
            t->watch_first_version = t->b->policy_version;
        learnerlink_send_policy(t->ll, t->l->policy, t->l->policy_version);
        if (t->updates % 10 == 0) {
            const char *names[] = {"entropy", "labels"};
            double values[] = {st.entropy, t->labels};
            learnerlink_send_status(t->ll, "rl", t->l->policy_version, t->rv, names, values, 2);
        }
    }
}

/* Ends the run: Shutdown, acknowledged (unless sent already); then every
 * child exits 0. */
void finish_run(tlearner_t *t, int send_shutdown) {
    if (send_shutdown) assert_int_equal(learnerlink_shutdown(t->ll, "run finished", 5000), 0);
    tl_free(t);
    for (int i = 0; i < n_children; i++) {
        child_t *c = &children[i];
        if (c->reaped) continue;
        if (!wait_exit(c, 10)) {
            dump_logs();
            fail_msg("%s did not exit within 10 s of the shutdown", c->name);
        }
        if (!exited_with(c, 0)) {
            dump_logs();
            fail_msg("%s exited with status 0x%x, expected 0", c->name, c->status);
        }
    }
}
