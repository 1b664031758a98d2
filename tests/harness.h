/* harness.h - the scaffolding the test programs share, built once
 * (obj/tests/harness.o) and linked into every test program.
 *
 * - Files: slurp / slurp_n / must_slurp read a whole file, spit writes one,
 *   tmp_path names a file under tmp_dir.
 * - A command's result (result_t: exit status, stdout, stderr) and the
 *   checks on it (expect_status, expect_in).
 * - Children in one process group (test_cluster, test_queue): every child
 *   joins the group of a leader that only waits, so the teardown, an alarm
 *   (on_alarm_group) or a failed assertion kill them all with one
 *   kill(-group). Each child's output goes to tmp_dir/<log_prefix>-<name>.log,
 *   which the assertions read and dump_logs prints when a case fails.
 * - Descendants (test_run, test_browser): programs that start their own
 *   children (rlhf run) are watched through /proc; kill_descendants and
 *   assert_none_left check that nothing outlives them.
 * - The cluster (cluster_t, tlearner_t): a real rlhf-coordinator and
 *   rollout workers as children, and a single-rank learner loop in this
 *   process (learnerlink.h + learner.h).
 *
 * The harness owns the globals below; each test's main fills tmp_dir,
 * build_dir and harness_name before its first case (group_main_init and
 * subreaper_main_init do it for the tests of processes). Every wait is bounded.
 * Not thread-safe: the tests drive everything from their main thread. */
#ifndef RLHF_TESTS_HARNESS_H
#define RLHF_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "job.h"
#include "learner.h"
#include "learnerlink.h"
#include "transport.h"
#include "wire.h"

extern char tmp_dir[512];       /* this program's scratch directory */
extern char build_dir[256];     /* the build tree (RLHF_BUILD) */
extern const char *harness_name; /* the program's name, for the alarm messages */

/* ---- files ------------------------------------------------------------------ */

/* The whole file (malloc'd, NUL-terminated; *len its size when len is not
 * NULL), or NULL when it cannot be opened. */
char *slurp_n(const char *path, size_t *len);
/* slurp_n without the length. */
char *slurp(const char *path);
/* slurp, failing the test when the file cannot be opened. */
char *must_slurp(const char *path);
/* Writes n bytes / a string to path (replacing it); fails the test when it
 * cannot. */
void spit_n(const char *path, const void *data, size_t n);
void spit(const char *path, const char *text);
/* A run directory's logs: RUN_DIR/logs/NAME.log exists for each name in
 * the NULL-terminated list want, and no file in RUN_DIR/logs holds a
 * sanitizer report (AddressSanitizer, LeakSanitizer, UBSan's "runtime
 * error:"); fails the test, showing the log, otherwise. */
void check_run_logs(const char *run_dir, const char *const *want);
/* buf = tmp_dir/name; returns buf. */
const char *tmp_path(char *buf, size_t n, const char *name);

/* ---- a command's result ------------------------------------------------------ */

typedef struct {
    int status;     /* exit status; 128 + signal when killed */
    char *out, *err;
    double seconds;
} result_t;

/* Frees out and err (and NULLs them). */
void result_free(result_t *r);
/* Asserts the exit status, showing what the command printed when wrong. */
void expect_status(const result_t *r, int status, const char *what);
/* Asserts that needle is in text. */
void expect_in(const char *text, const char *needle, const char *what);

/* ---- a run's metrics.jsonl ----------------------------------------------------- */

/* Every iteration exactly once (line i has iteration i), env_steps one batch
 * apart, labels never over max_labels; iterations lines, the last at total
 * env steps. */
void check_metrics_lines(const char *metrics, long long batch, long long iterations, long long total,
                   long long max_labels);

/* ---- children in one process group ------------------------------------------ */

#define MAX_CHILDREN 32
typedef struct {
    pid_t pid;
    char name[64];
    char log[640];
    int reaped, status;
} child_t;

extern pid_t group;             /* the process group every child joins (its leader's pid) */
extern char log_prefix[64];     /* the case's name: its children's logs are <prefix>-<name>.log */
extern child_t children[MAX_CHILDREN];
extern int n_children;

void kill_group(void);
/* SIGALRM handler: kills the group, says "<harness_name>: timed out", exits 1. */
void on_alarm_group(int sig);
/* A leader that only waits: the group outlives any child we kill. */
void start_group(void);
/* Kills the group and reaps every child. */
void stop_group(void);
/* Starts argv[0] (a path under build_dir) with output to its log. */
child_t *spawn(const char *name, char *const argv[]);
/* Waits up to seconds for c to exit; returns 1 with c->status set. */
int wait_exit(child_t *c, double seconds);
int exited_with(const child_t *c, int code);
/* The whole log of a child (malloc'd, NUL-terminated). */
char *read_log(const child_t *c);
int log_count(const child_t *c, const char *needle);
int log_has(const child_t *c, const char *needle);
/* 1 when one line of c's log holds both a and b. */
int log_line_has(const child_t *c, const char *a, const char *b);
/* The last lines of every child's log, to stderr. */
void dump_logs(void);
/* A TCP port free on 127.0.0.1 right now. */
int free_port(void);

/* The start of main in a test of children: harness_name = name, tmp_dir =
 * $RLHF_TEST_TMP/<tag>-<pid> (made), build_dir = $RLHF_BUILD, SIGPIPE
 * ignored, on_alarm_group after alarm_s, kill_group at exit. 0, or -1 with
 * the reason on stderr. */
int group_main_init(const char *name, const char *tag, unsigned alarm_s);
/* cmocka setup/teardown for such cases: the teardown stops the group and
 * prints the case's time. */
int group_case_setup(void **state);
int group_case_teardown(void **state);

/* ---- processes from /proc ------------------------------------------------------ */

/* The live (non-zombie) children of parent into out; returns how many. */
int proc_children(pid_t parent, pid_t *out, int max);

/* ---- descendants ------------------------------------------------------------ */

#define MAX_SEEN 1024
extern pid_t seen[MAX_SEEN];    /* every descendant noted since n_seen was reset */
extern int n_seen;

/* Live (non-zombie) descendants of this process into out; returns how many. */
int descendants(pid_t *out, int max);
void note_descendants(void);
void kill_descendants(void);
/* SIGALRM handler: kills every descendant, says "<harness_name>: timed out",
 * exits 1. */
void on_alarm_descendants(int sig);
/* Nothing we saw may be alive, and nothing may be left under us (orphans
 * handed to us are reaped for up to reap_s first); and we did watch at
 * least min_seen processes. */
void assert_none_left(double reap_s, int min_seen);
/* The start of main in a test whose children start children: harness_name
 * = name, build_dir = $RLHF_BUILD, tmp_dir = $RLHF_TEST_TMP/<name>.<pid>
 * (made), on_alarm for SIGALRM, and this process a child subreaper (what
 * they leave behind becomes our child). */
void subreaper_main_init(const char *name, void (*on_alarm)(int));
/* cmocka teardown: kills every descendant, cancels the alarm. */
int descendants_teardown(void **state);

/* ---- the cluster ------------------------------------------------------------ */

typedef struct {
    char job[640], out[640], endpoint[64], bin_coord[400], bin_rollout[400], bin_rlhf[400];
    char max_message[32];
    const char *curve_secret, *allow;   /* coordinator CURVE options, or NULL */
} cluster_t;

/* A small CartPole job: 128 env steps a batch, a few labelling rounds. */
void cluster_job(cluster_t *cl, const char *name, long long total_steps, int labels, const char *extra);
/* Names the case (log_prefix), its OUT and endpoint, and starts the group. */
void cluster_init(cluster_t *cl, const char *name);
child_t *start_coordinator(cluster_t *cl, const char *name);
/* key/server: CURVE files, or NULL. */
child_t *start_rollout(cluster_t *cl, const char *id, const char *key, const char *server);

/* ---- the learner, in this process ------------------------------------------- */

typedef struct {
    learnerlink_t *ll;
    job_t job;
    learner_t *l;
    traj_t *b;
    int gate;                   /* no PPO before the first reward fit (train.c's order) */
    long long steps;
    int updates, labels, answers, fits;
    uint64_t rv;
    uint64_t max_batch_version; /* the newest policy version a batch was acted with */
    char last_worker[WIRE_MAX_NAME + 1];
    const char *watch;          /* a worker id whose first batch is noted */
    int watch_batches;
    uint64_t watch_first_version;
} tlearner_t;

/* Called with every label the learner takes, before it is used (NULL: none). */
extern void (*tl_on_label)(const learnerlink_label_t *lb);

void tl_start(tlearner_t *t, const cluster_t *cl, const transport_keypair_t *keys, const char *server_pub);
void tl_free(tlearner_t *t);
/* One turn of the learner loop: labels (refit at a round's end), then one
 * batch (PPO, new policy weights). */
void tl_step(tlearner_t *t, long timeout_ms);
/* Ends the run: Shutdown, acknowledged (unless sent already); then every
 * child exits 0. */
void finish_run(tlearner_t *t, int send_shutdown);

#endif
