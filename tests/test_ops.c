/* test_ops.c - operating a run: the reward-hacking watch, `rlhf plot`,
 * `rlhf status`, and the learner's Status reaching the coordinator.
 *
 * In-process: the watch on constructed series (it warns, once, on a
 * learned return that rises while the true return falls, on a held-out
 * accuracy under the floor, on disagreement that stays far above its
 * labelled level; it stays silent on healthy and on merely noisy series);
 * Kendall's tau; the SVG writer's ticks and labels.
 *
 * Through the binaries ($RLHF_BUILD/bin): `rlhf plot` on a small synthetic
 * metrics.jsonl (the three files exist, are well-formed XML by the checker
 * below, and hold each series with exactly its points), and its errors;
 * `rlhf status` against nothing (a clear error within the timeout, not a
 * hang), bad addresses, and an http:// address served by a canned /metrics
 * (a child process of this test); and a real `rlhf run` (2 learner ranks)
 * where `rlhf status tcp://...` prints the learner's metrics (accuracy,
 * step time and allreduce time non-zero) and the coordinator's
 * status.json holds them. The run is stopped with SIGTERM; nothing it
 * started may be left (this test is a child subreaper). */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include "report.h"
#include "svg.h"
#include "util.h"
#include "watch.h"

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* ---- small helpers ------------------------------------------------------- */

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* Runs $RLHF_BUILD/bin/rlhf with args (NULL-terminated), waiting at most
 * limit_s; its stdout and stderr are captured. */
static result_t run_rlhf(const char *tag, const char *const *args, double limit_s) {
    char bin[400], out[700], err[700];
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build_dir);
    snprintf(out, sizeof out, "%s/%s.stdout", tmp_dir, tag);
    snprintf(err, sizeof err, "%s/%s.stderr", tmp_dir, tag);
    const char *argv[32] = {bin};
    int argc = 1;
    while (*args && argc < 31) argv[argc++] = *args++;
    argv[argc] = NULL;
    double t0 = now_s();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    for (;;) {
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) break;
        if (now_s() - t0 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("rlhf %s did not finish within %.0f s (a hang)", argv[1], limit_s);
        }
        usleep(10000);
    }
    result_t r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), .out = slurp(out),
                  .err = slurp(err), .seconds = now_s() - t0};
    if (!r.out) r.out = calloc(1, 1);
    if (!r.err) r.err = calloc(1, 1);
    return r;
}

/* ---- a tiny XML well-formedness checker ---------------------------------- */

static int name_char(char c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
}

/* An entity or character reference at p ('&'); returns its length or 0. */
static size_t reference(const char *p) {
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (strncmp(p, ents[i], strlen(ents[i])) == 0) return strlen(ents[i]);
    if (p[1] == '#') {
        size_t n = 2;
        int hex = p[2] == 'x';
        if (hex) n++;
        size_t digits = 0;
        while (hex ? isxdigit((unsigned char)p[n]) : isdigit((unsigned char)p[n])) n++, digits++;
        if (digits && p[n] == ';') return n + 1;
    }
    return 0;
}

/* Checks XML 1.0 well-formedness of the subset an SVG writer produces (a
 * prolog, elements, attributes in double or single quotes, text,
 * references; no comments, CDATA, DOCTYPE or processing instructions past
 * the prolog). Returns NULL when well-formed, else what is wrong (static). */
static const char *xml_check(const char *s) {
    static char why[200];
    const char *p = s;
    char stack[64][64];
    int depth = 0, roots = 0;
    if (strncmp(p, "<?xml ", 6) == 0) {
        p = strstr(p, "?>");
        if (!p) return "unterminated XML declaration";
        p += 2;
    }
    while (*p) {
        if (*p == '<') {
            if (p[1] == '/') {
                p += 2;
                const char *n0 = p;
                while (name_char(*p, p == n0)) p++;
                size_t len = (size_t)(p - n0);
                while (*p == ' ' || *p == '\n') p++;
                if (*p != '>') return "malformed end tag";
                if (depth == 0) return "end tag without a start tag";
                depth--;
                if (len != strlen(stack[depth]) || strncmp(n0, stack[depth], len) != 0) {
                    snprintf(why, sizeof why, "end tag does not match <%.60s>", stack[depth]);
                    return why;
                }
                p++;
                continue;
            }
            p++;
            const char *n0 = p;
            if (!name_char(*p, 1)) return "malformed start tag";
            while (name_char(*p, p == n0)) p++;
            size_t len = (size_t)(p - n0);
            if (len >= 64 || depth >= 64) return "name too long or nesting too deep";
            if (depth == 0 && ++roots > 1) return "more than one root element";
            char attrs[32][64];
            int n_attrs = 0;
            for (;;) {
                int space = 0;
                while (*p == ' ' || *p == '\n' || *p == '\t') p++, space = 1;
                if (*p == '>' || (*p == '/' && p[1] == '>')) break;
                if (!space || !name_char(*p, 1)) return "malformed attribute";
                const char *a0 = p;
                while (name_char(*p, p == a0)) p++;
                if ((size_t)(p - a0) >= 64 || n_attrs >= 32) return "attribute name too long or too many";
                memcpy(attrs[n_attrs], a0, (size_t)(p - a0));
                attrs[n_attrs][p - a0] = '\0';
                for (int i = 0; i < n_attrs; i++)
                    if (strcmp(attrs[i], attrs[n_attrs]) == 0) return "duplicate attribute";
                n_attrs++;
                if (*p++ != '=') return "attribute without '='";
                char q = *p++;
                if (q != '"' && q != '\'') return "unquoted attribute value";
                while (*p && *p != q) {
                    if (*p == '<') return "'<' in an attribute value";
                    if (*p == '&') {
                        size_t r = reference(p);
                        if (!r) return "bare '&' in an attribute value";
                        p += r;
                    } else {
                        p++;
                    }
                }
                if (*p++ != q) return "unterminated attribute value";
            }
            if (*p == '/') {
                p += 2;     // empty element
            } else {
                memcpy(stack[depth], n0, len);
                stack[depth++][len] = '\0';
                p++;
            }
            continue;
        }
        if (*p == '&') {
            size_t r = reference(p);
            if (!r) return "bare '&' in text";
            p += r;
            continue;
        }
        if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') return "control character";
        if (depth == 0 && *p != ' ' && *p != '\n') return "text outside the root element";
        p++;
    }
    if (depth) return "unclosed element";
    if (roots != 1) return "no root element";
    return NULL;
}

static void test_xml_checker(void **state) {
    (void)state;
    /* The checker must be able to fail, or passing it proves nothing. */
    assert_null(xml_check("<?xml version=\"1.0\"?>\n<svg a=\"1\" b='x &amp; y'><g><t>1 &lt; 2</t></g><e/></svg>\n"));
    assert_non_null(xml_check("<svg><g></svg></g>"));
    assert_non_null(xml_check("<svg a=1></svg>"));
    assert_non_null(xml_check("<svg>a & b</svg>"));
    assert_non_null(xml_check("<svg a=\"1\" a=\"2\"/>"));
    assert_non_null(xml_check("<svg></svg><svg></svg>"));
    assert_non_null(xml_check("<svg>"));
    assert_non_null(xml_check("<svg a=\"x<y\"/>"));
}

/* ---- the watch ----------------------------------------------------------- */

/* A deterministic noise in [-1, 1]. */
static double noise(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32767.5 - 1.0;
}

static watch_point_t point(long long it, double true_ret, double learned_ret) {
    watch_point_t p = {.iteration = it, .env_steps = (it + 1) * 256, .true_return = true_ret,
                       .learned_return = learned_ret, .val_acc = NAN, .disagreement = 0.1,
                       .disagreement_labelled = 0.1};
    return p;
}

typedef struct {
    FILE *log;
    char *text;
    size_t len;
} capture_t;

static watch_t *watch_capture(capture_t *c, watch_options_t *o) {
    c->text = NULL;
    c->len = 0;
    c->log = open_memstream(&c->text, &c->len);
    assert_non_null(c->log);
    watch_options_default(o);
    o->log = c->log;
    return watch_new(o);
}

static void capture_end(capture_t *c) {
    fclose(c->log);
    free(c->text);
}

static void test_kendall_tau(void **state) {
    (void)state;
    const double up[] = {1, 2, 3, 4, 5}, down[] = {5, 4, 3, 2, 1}, flat[] = {3, 3, 3, 3};
    const double mixed[] = {1, 3, 2, 4};    // 5 concordant, 1 discordant of 6
    assert_float_equal(watch_kendall_tau(up, 5), 1.0, 1e-12);
    assert_float_equal(watch_kendall_tau(down, 5), -1.0, 1e-12);
    assert_float_equal(watch_kendall_tau(flat, 4), 0.0, 1e-12);
    assert_float_equal(watch_kendall_tau(mixed, 4), 4.0 / 6.0, 1e-12);
    assert_float_equal(watch_kendall_tau(up, 1), 0.0, 1e-12);
}

/* The learned return climbs while the true return falls (with noise): a
 * warning, once, naming both trends; a healthy run before it is silent. */
static void test_watch_returns_diverge(void **state) {
    (void)state;
    capture_t c;
    watch_options_t o;
    watch_t *w = watch_capture(&c, &o);
    unsigned seed = 7;
    long long it = 0;
    watch_result_t r;
    /* 40 healthy iterations: both rise together. */
    for (; it < 40; it++) {
        double base = 20 + 5.0 * it;
        watch_point_t none = point(it, NAN, NAN);     // no episode ended: not in the window
        assert_int_equal(watch_add(w, &none, NULL), 0);
        watch_point_t p = point(it, base + 10 * noise(&seed), 0.8 * base + 8 * noise(&seed));
        assert_int_equal(watch_add(w, &p, &r), 0);
    }
    assert_true(r.tau_learned > 0.4 && r.tau_true > 0.4);
    assert_int_equal(watch_warnings(w), 0);
    /* Then hacking: the learned return keeps climbing, the true one falls. */
    int fired_at = -1, fired = 0;
    for (int k = 0; k < 40; k++, it++) {
        watch_point_t p = point(it, 220 - 6.0 * k + 10 * noise(&seed), 180 + 6.0 * k + 8 * noise(&seed));
        int bits = watch_add(w, &p, &r);
        if (bits & WATCH_RETURNS) {
            fired++;
            if (fired_at < 0) fired_at = k;
        }
    }
    assert_int_equal(fired, 1);                 // once, not once per iteration
    assert_true(fired_at >= 5 && fired_at < 20);  // within the window, not on the first bad point
    assert_true(r.holding & WATCH_RETURNS);
    assert_true(r.trend_gap > 0.8);
    assert_int_equal(watch_warnings(w), 1);
    fflush(c.log);
    expect_in(c.text, "reward-hacking watch: learned return rising", "the warning line");
    expect_in(c.text, "while true return falls", "the warning line");
    assert_int_equal(count_of(c.text, "\n"), 1);
    watch_destroy(&w);
    assert_null(w);
    capture_end(&c);
}

/* Healthy series stay silent: rising together, a plateau with noise (as
 * CartPole at 500 with the odd short episode), and learned falling with
 * true (both bad, but not reward hacking). */
static void test_watch_healthy_silent(void **state) {
    (void)state;
    capture_t c;
    watch_options_t o;
    watch_t *w = watch_capture(&c, &o);
    unsigned seed = 11;
    for (long long it = 0; it < 600; it++) {
        double t, l;
        if (it < 100) t = 20 + 4.0 * it, l = 0.7 * t;
        else if (it < 400) t = 500 - (noise(&seed) > 0.8 ? 300 : 0), l = 350 + 20 * noise(&seed);
        else t = 500 - (it - 400) * 2.0 + 15 * noise(&seed), l = 350 - (it - 400) * 1.5 + 10 * noise(&seed);
        watch_point_t p = point(it, t, l);
        p.refit = it % 10 == 0;
        p.val_acc = 0.9 + 0.05 * noise(&seed);
        p.val_n = 50;
        p.disagreement = 0.1 * (1.5 + noise(&seed));    // at most 2.5x the labelled level
        p.disagreement_labelled = 0.1;
        assert_int_equal(watch_add(w, &p, NULL), 0);
    }
    assert_int_equal(watch_warnings(w), 0);
    fflush(c.log);
    assert_int_equal((int)c.len, 0);
    watch_destroy(&w);
    capture_end(&c);
}

/* Held-out accuracy: judged at each reward-model update with enough
 * held-out comparisons; warns when it falls under the floor, again after a
 * recovery, not while it stays under. */
static void test_watch_accuracy(void **state) {
    (void)state;
    capture_t c;
    watch_options_t o;
    watch_t *w = watch_capture(&c, &o);
    struct {
        int refit;
        double acc;
        int n, warns;
    } steps[] = {
        {1, 0.95, 40, 0}, {0, NAN, 0, 0},   {1, 0.50, 10, 0},   // too few held out to judge
        {1, 0.55, 40, 1}, {0, NAN, 40, 0},  {1, 0.52, 40, 0},   // under the floor: one warning
        {1, 0.80, 40, 0}, {1, 0.40, 60, 1}, {1, NAN, 0, 0},      // recovered, then under again
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        watch_point_t p = point((long long)i, NAN, NAN);
        p.refit = steps[i].refit, p.val_acc = steps[i].acc, p.val_n = steps[i].n;
        int bits = watch_add(w, &p, NULL);
        if (((bits & WATCH_ACCURACY) != 0) != steps[i].warns) fail_msg("step %zu: warned %d", i, bits);
    }
    assert_int_equal(watch_warnings(w), 2);
    fflush(c.log);
    expect_in(c.text, "held-out accuracy 0.550 is below 0.60 (40 held-out comparisons)", "the warning line");
    watch_destroy(&w);
    capture_end(&c);
}

/* Disagreement on fresh rollouts: over 3x the labelled level for 5
 * iterations in a row warns; 4 in a row, or a missing figure in between,
 * does not. Once warned, it is over only after 5 iterations at or under
 * the ceiling: a ratio hovering about it warns once. */
static void test_watch_disagreement(void **state) {
    (void)state;
    capture_t c;
    watch_options_t o;
    watch_t *w = watch_capture(&c, &o);
    const double fresh[] = {0.1, 0.5, 0.5, 0.5, 0.5, 0.1, 0.5, 0.5, NAN, 0.5, 0.5, 0.5, 0.5, 0.5,   // warns
                            0.6, 0.1, 0.4, 0.2, 0.4, 0.31, 0.29, 0.35, 0.1,                    // hovering
                            0.1, 0.1, 0.1, 0.1, 0.1, 0.4, 0.4, 0.4, 0.4, 0.4, 0.3};           // over, again
    const int warns[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                         0, 0, 0, 0, 0, 0, 0, 0, 0,
                         0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    watch_result_t r;
    for (size_t i = 0; i < sizeof fresh / sizeof fresh[0]; i++) {
        watch_point_t p = point((long long)i, NAN, NAN);
        p.disagreement = fresh[i];
        p.disagreement_labelled = 0.1;
        int bits = watch_add(w, &p, &r);
        if (((bits & WATCH_DISAGREEMENT) != 0) != warns[i]) fail_msg("point %zu: warned %d", i, bits);
        if (isfinite(fresh[i])) assert_float_equal(r.disagreement_ratio, fresh[i] / 0.1, 1e-9);
        else assert_true(isnan(r.disagreement_ratio));
    }
    assert_int_equal(watch_warnings(w), 2);
    fflush(c.log);
    expect_in(c.text, "ensemble disagreement on fresh rollouts 0.5 is 5.0x its level on the labelled segments (0.1), 5 iterations in a row",
              "the warning line");
    watch_destroy(&w);
    capture_end(&c);
}

/* Silent mode counts without writing (replaying a run before a resume). */
static void test_watch_silent(void **state) {
    (void)state;
    capture_t c;
    watch_options_t o;
    watch_t *w = watch_capture(&c, &o);
    watch_set_silent(w, 1);
    watch_point_t p = point(0, NAN, NAN);
    p.refit = 1, p.val_acc = 0.3, p.val_n = 100;
    assert_int_equal(watch_add(w, &p, NULL), WATCH_ACCURACY);
    assert_int_equal(watch_warnings(w), 1);
    fflush(c.log);
    assert_int_equal((int)c.len, 0);
    watch_destroy(&w);
    capture_end(&c);
}

/* A resumed learner replays the kept metrics lines into its watch: the
 * count and the rules' states come back, and nothing is printed again. */
static void test_watch_replay(void **state) {
    (void)state;
    char path[700];
    snprintf(path, sizeof path, "%s/replay.jsonl", tmp_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* Fit 1 fine, fit 2 under the floor (a warning then), fit 3 still under. */
    const double acc[] = {0.9, 0.5, 0.45};
    for (int i = 0; i < 3; i++)
        fprintf(f, "{\"iteration\":%d,\"env_steps\":%d,\"rm_val_acc\":%g,\"rm_val_n\":50,\"rm_fits\":%d,"
                   "\"true_return\":null,\"learned_return\":null,\"ensemble_disagreement\":0.1,"
                   "\"ensemble_disagreement_labelled\":0.1}\n",
                i, 256 * (i + 1), acc[i], i + 1);
    fclose(f);
    capture_t c;
    watch_options_t o;
    watch_t *w = watch_capture(&c, &o);
    report_watch_replay(path, w);
    assert_int_equal(watch_warnings(w), 1);
    fflush(c.log);
    assert_int_equal((int)c.len, 0);    // replayed silently
    /* Live again: still under the floor at the next fit is no new warning;
     * a recovery and a new drop is. */
    watch_point_t p = point(3, NAN, NAN);
    p.refit = 1, p.val_acc = 0.4, p.val_n = 50;
    assert_int_equal(watch_add(w, &p, NULL), 0);
    p.iteration = 4, p.val_acc = 0.9;
    assert_int_equal(watch_add(w, &p, NULL), 0);
    p.iteration = 5, p.val_acc = 0.3;
    assert_int_equal(watch_add(w, &p, NULL), WATCH_ACCURACY);
    assert_int_equal(watch_warnings(w), 2);
    fflush(c.log);
    assert_int_equal(count_of(c.text, "reward-hacking watch"), 1);
    watch_destroy(&w);
    capture_end(&c);
    /* A missing file adds nothing. */
    w = watch_new(NULL);
    snprintf(path, sizeof path, "%s/no-such.jsonl", tmp_dir);
    report_watch_replay(path, w);
    assert_int_equal(watch_warnings(w), 0);
    watch_destroy(&w);
}

/* ---- SVG ----------------------------------------------------------------- */

static void test_svg_ticks(void **state) {
    (void)state;
    double t0, t1;
    assert_float_equal(svg_nice_ticks(0, 30208, 8, &t0, &t1), 5000, 1e-9);
    assert_float_equal(t0, 0, 1e-9);
    assert_float_equal(t1, 35000, 1e-9);
    assert_float_equal(svg_nice_ticks(-1180, -140, 6, &t0, &t1), 500, 1e-9);
    assert_float_equal(t0, -1500, 1e-9);
    assert_float_equal(t1, 0, 1e-9);
    assert_float_equal(svg_nice_ticks(0.52, 0.97, 6, &t0, &t1), 0.1, 1e-12);
    assert_float_equal(t0, 0.5, 1e-9);
    assert_float_equal(t1, 1.0, 1e-9);
    double step = svg_nice_ticks(7, 7, 6, &t0, &t1);     // one value: a range around it
    assert_true(step > 0 && t0 < 7 && t1 > 7);
    step = svg_nice_ticks(NAN, 1, 6, &t0, &t1);
    assert_true(step > 0 && isfinite(t0) && isfinite(t1));
    char b[32];
    svg_format_tick(b, sizeof b, 12500, 2500);
    assert_string_equal(b, "12.5k");
    svg_format_tick(b, sizeof b, 1500000, 500000);
    assert_string_equal(b, "1.5M");
    svg_format_tick(b, sizeof b, 5000, 1000);
    assert_string_equal(b, "5000");
    svg_format_tick(b, sizeof b, 0.6, 0.2);
    assert_string_equal(b, "0.6");
    svg_format_tick(b, sizeof b, 1e-17, 0.2);
    assert_string_equal(b, "0");
    svg_format_tick(b, sizeof b, -1500, 500);
    assert_string_equal(b, "-1500");
}

static void test_svg_escapes_and_errors(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    const double x[] = {0, 1, 2, NAN, 4}, y[] = {1, NAN, 3, 4, 5};
    svg_series_t s[] = {{.name = "a <b> & \"c\"", .x = x, .y = y, .n = 5}, {.name = "empty", .x = x, .y = y, .n = 0}};
    svg_chart_t c = {.title = "t & u", .x_label = "x <units>", .y_label = "y's"};
    char err[256];
    assert_int_equal(svg_line_chart(f, &c, s, 2, err, sizeof err), 0);
    fclose(f);
    const char *why = xml_check(text);
    if (why) fail_msg("not well-formed: %s\n%s", why, text);
    expect_in(text, "a &lt;b&gt; &amp; &quot;c&quot;", "the name escaped");
    expect_in(text, "empty (no data)", "an empty series marked");
    assert_int_equal(count_of(text, "<polyline"), 1);
    assert_int_equal(count_of(text, "<circle"), 3);     // the points with both coordinates
    assert_null(strstr(text, "<script"));
    assert_null(strstr(text, "href"));
    free(text);
    /* A series on a right axis the chart does not have. */
    svg_series_t r = {.name = "r", .x = x, .y = y, .n = 5, .right_axis = 1};
    f = open_memstream(&text, &len);
    assert_int_equal(svg_line_chart(f, &c, &r, 1, err, sizeof err), -1);
    fclose(f);
    free(text);
    expect_in(err, "right axis", "the error says why");
}

/* ---- rlhf plot ----------------------------------------------------------- */

/* The number of points of the polyline drawn for the series after the
 * legend text `name` (the polylines come in series order). */
static int polyline_points(const char *svg, int index) {
    const char *p = svg;
    for (int i = 0; i <= index; i++) {
        p = strstr(p, "<polyline");
        if (!p) return -1;
        if (i < index) p++;
    }
    const char *pts = strstr(p, "points=\"");
    assert_non_null(pts);
    pts += 8;
    int n = 0;
    for (; *pts != '"'; pts++) n += *pts == ',';
    return n;
}

static void check_svg_file(const char *path) {
    char *text = slurp(path);
    if (!text) fail_msg("%s was not written", path);
    const char *why = xml_check(text);
    if (why) fail_msg("%s is not well-formed XML: %s", path, why);
    expect_in(text, "xmlns=\"http://www.w3.org/2000/svg\"", "an SVG document");
    assert_null(strstr(text, "<script"));
    assert_null(strstr(text, "href"));
    assert_null(strstr(text, "@import"));
    free(text);
}

static void test_plot(void **state) {
    (void)state;
    char dir[700], out[760], path[900];
    snprintf(dir, sizeof dir, "%s/plotrun", tmp_dir);
    snprintf(out, sizeof out, "%s/figures", dir);
    mkdir_p(dir);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[env]\nid = CartPole-v1\n", f);
    fclose(f);
    /* 12 iterations; true return on 9 of them, learned on 8, accuracy on 10. */
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    int n_true = 0, n_learned = 0, n_acc = 0;
    for (int i = 0; i < 12; i++) {
        char tr[32] = "null", lr[32] = "null", acc[32] = "null";
        if (i % 4 != 3) snprintf(tr, sizeof tr, "%.1f", 20.0 + 30 * i), n_true++;
        if (i >= 2 && i % 4 != 3) snprintf(lr, sizeof lr, "%.2f", 15.0 + 25 * i), n_learned++;
        if (i >= 2) snprintf(acc, sizeof acc, "%.3f", 0.6 + 0.03 * i), n_acc++;
        fprintf(f, "{\"iteration\":%d,\"env_steps\":%d,\"labels\":%d,\"rm_val_acc\":%s,\"rm_train_acc\":%s,"
                   "\"true_return\":%s,\"learned_return\":%s}\n",
                i, 256 * (i + 1), 10 + 5 * (i / 3), acc, acc, tr, lr);
    }
    fputs("{\"iteration\":12,\"env_st", f);     // torn: a run still writing
    fclose(f);
    result_t r = run_rlhf("plot", (const char *const[]){"plot", dir, "-o", out, NULL}, 30);
    if (r.status != 0) fail_msg("rlhf plot: exit %d: %s", r.status, r.err);
    static const char *const names[] = {"returns_vs_env_steps.svg", "returns_vs_labels.svg", "accuracy_vs_labels.svg"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", out, names[i]);
        expect_in(r.out, path, "it prints what it wrote");
        check_svg_file(path);
        char *svg = slurp(path);
        if (i < 2) {
            expect_in(svg, ">true return<", "the true-return series");
            expect_in(svg, ">learned return (right axis)<", "the learned-return series");
            expect_in(svg, "true return (environment reward per episode)", "the left axis title");
            expect_in(svg, i == 0 ? "environment steps" : "labels (answered queries)", "the x axis title");
            expect_in(svg, "CartPole-v1", "the title names the environment");
            assert_int_equal(polyline_points(svg, 0), n_true);
            assert_int_equal(polyline_points(svg, 1), n_learned);
        } else {
            expect_in(svg, ">held-out accuracy<", "the accuracy series");
            expect_in(svg, "reward-model accuracy (fraction of comparisons)", "the y axis title");
            assert_int_equal(polyline_points(svg, 0), n_acc);
        }
        free(svg);
    }
    result_free(&r);

    /* Errors: no metrics, a malformed line (named), a bad option. */
    char empty[760];
    snprintf(empty, sizeof empty, "%s/nothing-here", tmp_dir);
    r = run_rlhf("plot-missing", (const char *const[]){"plot", empty, NULL}, 30);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "metrics.jsonl", "the error names the file");
    result_free(&r);
    char bad[760];
    snprintf(bad, sizeof bad, "%s/badrun", tmp_dir);
    mkdir_p(bad);
    snprintf(path, sizeof path, "%s/metrics.jsonl", bad);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"iteration\":0,\"env_steps\":256}\n{\"iteration\":1,oops}\n", f);
    fclose(f);
    r = run_rlhf("plot-bad", (const char *const[]){"plot", bad, NULL}, 30);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "metrics.jsonl:2:", "the error names the file and line");
    result_free(&r);
    r = run_rlhf("plot-opt", (const char *const[]){"plot", dir, "--bogus", NULL}, 30);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "--bogus", "the error names the option");
    result_free(&r);
}

/* ---- rlhf status --------------------------------------------------------- */

/* A loopback port nothing listens on (bound, then closed). */
static int dead_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void test_status_unreachable(void **state) {
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", dead_port());
    result_t r = run_rlhf("status-dead", (const char *const[]){"status", addr, "--timeout", "700", NULL}, 20);
    assert_int_equal(r.status, 1);
    expect_in(r.err, addr, "the error names the address");
    expect_in(r.err, "0.7 s", "and the timeout");
    assert_true(r.seconds < 5);
    result_free(&r);
    snprintf(addr, sizeof addr, "http://127.0.0.1:%d", dead_port());
    r = run_rlhf("status-dead-http", (const char *const[]){"status", addr, "--timeout", "700", NULL}, 20);
    assert_int_equal(r.status, 1);
    expect_in(r.err, addr, "the error names the address");
    assert_true(r.seconds < 5);
    result_free(&r);
    static const char *const bad[] = {"127.0.0.1:5555", "tcp://nohost", "http://h:0", "udp://h:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_rlhf("status-bad", (const char *const[]){"status", bad[i], NULL}, 20);
        assert_int_equal(r.status, 2);
        expect_in(r.err, bad[i], "the error names the address");
        result_free(&r);
    }
    r = run_rlhf("status-timeout", (const char *const[]){"status", "tcp://127.0.0.1:1", "--timeout", "x", NULL}, 20);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "--timeout", "the error names the option");
    result_free(&r);
}

/* A one-connection-at-a-time HTTP server in a child process answering
 * every request with body; returns its pid, *port its port. */
static pid_t canned_http(const char *body, int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 4), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c < 0) continue;
            char req[4096];
            size_t got = 0;
            ssize_t n;
            while (got < sizeof req - 1 && (n = read(c, req + got, sizeof req - 1 - got)) > 0) {
                got += (size_t)n;
                req[got] = '\0';
                if (strstr(req, "\r\n\r\n")) break;
            }
            char head[256];
            int ok = strncmp(req, "GET /metrics ", 13) == 0;
            snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", ok ? "200 OK" : "404 Not Found", ok ? strlen(body) : 0);
            if (write(c, head, strlen(head)) < 0 || (ok && write(c, body, strlen(body)) < 0)) {}
            close(c);
        }
    }
    close(s);
    return pid;
}

static void test_status_http(void **state) {
    (void)state;
    const char *metrics =
        "# HELP rlhf_workers Registered workers by kind.\n# TYPE rlhf_workers gauge\n"
        "rlhf_workers{kind=\"rollout\"} 3\nrlhf_workers{kind=\"labeler\"} 2\nrlhf_workers{kind=\"learner\"} 1\n"
        "rlhf_queue_depth 7\nrlhf_queries_leased 2\nrlhf_labels_total 123\nrlhf_env_steps_total 45056\n"
        "rlhf_env_steps_per_second 2345.5\nrlhf_policy_version 88\n"
        "rlhf_policy_lag_bucket{le=\"0\"} 80\nrlhf_policy_lag_bucket{le=\"+Inf\"} 100\n"
        "rlhf_policy_lag_sum 25\nrlhf_policy_lag_count 100\n"
        "rlhf_reward_model_accuracy 0.9375\nrlhf_ensemble_disagreement 0.031\nrlhf_true_return 187.5\n"
        "rlhf_learned_return 150.25\nrlhf_learner_step_seconds 0.0452\nrlhf_allreduce_seconds 0.0032\n"
        "rlhf_iteration 120\nrlhf_watch_warnings 1\nrlhf_ranks 2\n";
    int port;
    pid_t pid = canned_http(metrics, &port);
    char addr[64];
    snprintf(addr, sizeof addr, "http://127.0.0.1:%d", port);
    result_t r = run_rlhf("status-http", (const char *const[]){"status", addr, NULL}, 20);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (r.status != 0) fail_msg("rlhf status %s: exit %d: %s", addr, r.status, r.err);
    expect_in(r.out, "rollout 3   labeler 2   learner 1", "workers");
    expect_in(r.out, "depth 7 open queries (2 leased)", "queue depth");
    expect_in(r.out, "123 answered", "labels");
    expect_in(r.out, "45056   2346 steps/s", "env steps and their rate");
    expect_in(r.out, "lag 0.25 versions", "policy lag, the histogram's mean");
    expect_in(r.out, "reward-model accuracy 0.938", "accuracy");
    expect_in(r.out, "step 0.0452 s   allreduce 3.20 ms   ranks 2   reward-hacking warnings 1", "learner times");
    expect_in(r.out, "true return 187.5   learned return 150.2", "returns");
    result_free(&r);
}

/* ---- a real run ---------------------------------------------------------- */

/* SIGKILLs our children (found in /proc); returns how many. */
static int kill_children(void) {
    pid_t kids[1024];
    int n = proc_children(getpid(), kids, 1024);
    for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    return n;
}

/* Nothing may be left: whatever the launcher left behind became our child
 * (we are a subreaper), so wait until we have no children at all. */
static void assert_no_children(double seconds) {
    double end = now_s() + seconds;
    for (;;) {
        pid_t got = waitpid(-1, NULL, WNOHANG);
        if (got < 0 && errno == ECHILD) return;
        if (got == 0 && now_s() > end) {
            int n = kill_children();    // a bad run must not leave them running either
            fail_msg("%d processes left behind after rlhf run stopped", n);
        }
        if (got == 0) usleep(50000);
    }
}

static json_t *read_json(const char *path) {
    char *text = slurp(path);
    if (!text) return NULL;
    json_t *doc = json_parse(text, strlen(text), NULL, 0);
    free(text);
    return doc;
}

static double learner_metric(const json_t *status, const char *name) {
    double v = NAN;
    json_number(json_get(json_get(status, "learner"), name), &v);
    return v;
}

/* The number after `label` on a line of text, NaN when absent or "-". */
static double number_after(const char *text, const char *label) {
    const char *p = strstr(text, label);
    if (!p) return NAN;
    p += strlen(label);
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

static void test_status_real_run(void **state) {
    (void)state;
    char job[700], out[700], log[760], bin[400], path[900];
    snprintf(job, sizeof job, "%s/long.ini", tmp_dir);
    snprintf(out, sizeof out, "%s/run", tmp_dir);
    snprintf(log, sizeof log, "%s/run.log", tmp_dir);
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build_dir);
    FILE *f = fopen(job, "w");
    assert_non_null(f);
    /* Long enough that it is still going when we look; stopped by SIGTERM. */
    int http_port = dead_port();    // free now; the coordinator's HTTP port (/metrics)
    fprintf(f, "[env]\nid = CartPole-v1\nn_envs = 8\n[policy]\nhidden = 64,64\n"
               "[ppo]\nn_steps = 32\nepochs = 10\nminibatch = 256\nlr = 1e-3\n"
               "[reward]\nmembers = 3\nhidden = 32,32\nepochs = 10\nbatch = 32\n"
               "[feedback]\nmode = teacher\nlabels = 40\ninitial_frac = 0.25\nlabel_until = 0.05\n"
               "segment_len = 25\nquery = pair\nselect = disagreement\nteacher = oracle\n"
               "[coordinator]\nhttp_port = %d\n"
               "[run]\ntotal_steps = 20000000\neval_episodes = 0\nseed = 5\n",
            http_port);
    fclose(f);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execl(bin, bin, "run", job, "--out", out, "--learners", "2", "--rollouts", "1", "--labelers", "1",
              (char *)NULL);
        _exit(127);
    }
    double t0 = now_s(), limit = SANITIZED ? 180 : 60;
    char endpoint[64] = "";
    json_t *st = NULL;
    snprintf(path, sizeof path, "%s/status.json", out);
    /* The coordinator's address from the launcher's log, then a Status from
     * the learner with the reduction timed (after the first labels). */
    while (now_s() - t0 < limit) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            char *text = slurp(log);
            fail_msg("rlhf run ended early:\n%s", text ? text : "");
        }
        if (!endpoint[0]) {
            char *text = slurp(log);
            const char *p = text ? strstr(text, "coordinator at tcp://") : NULL;
            if (p) sscanf(p + strlen("coordinator at "), "%63[^,]", endpoint);
            free(text);
        }
        json_destroy(&st);
        st = read_json(path);
        if (endpoint[0] && learner_metric(st, "allreduce_seconds") > 0 && learner_metric(st, "iteration") >= 3) break;
        usleep(100000);
    }
    if (!endpoint[0] || !(learner_metric(st, "allreduce_seconds") > 0)) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        fail_msg("no learner Status in %s within %.0f s (endpoint '%s')", path, limit, endpoint);
    }
    /* status.json holds the learner's figures. */
    static const char *const names[] = {"reward_model_accuracy", "ensemble_disagreement", "true_return",
                                        "learned_return", "learner_step_seconds", "allreduce_seconds",
                                        "env_steps", "labels", "iteration"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (json_type(json_get(json_get(st, "learner"), names[i])) == JSON_NONE)
            fail_msg("status.json has no learner.%s", names[i]);
    assert_true(learner_metric(st, "learner_step_seconds") > 0);
    double acc = learner_metric(st, "reward_model_accuracy");
    assert_true(acc >= 0 && acc <= 1);
    assert_true(learner_metric(st, "labels") > 0);
    json_destroy(&st);

    result_t r = run_rlhf("status-run", (const char *const[]){"status", endpoint, NULL}, 20);
    if (r.status != 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        fail_msg("rlhf status %s: exit %d: %s", endpoint, r.status, r.err);
    }
    fprintf(stderr, "%s", r.out);
    expect_in(r.out, endpoint, "the address");
    expect_in(r.out, "rollout 1   labeler 1   learner 1", "the workers");
    double shown_acc = number_after(r.out, "reward-model accuracy ");
    double step = number_after(r.out, "step "), allreduce = number_after(r.out, "allreduce ");
    double steps_per_s = number_after(r.out, "env steps    "), rate = NAN;
    const char *rp = strstr(r.out, " steps/s");
    if (rp) {
        while (rp > r.out && rp[-1] != ' ') rp--;
        rate = strtod(rp, NULL);
    }
    assert_true(shown_acc >= 0 && shown_acc <= 1);
    if (!(step > 0)) fail_msg("no learner step time shown");
    if (!(allreduce > 0)) fail_msg("no allreduce time shown");
    assert_true(steps_per_s > 0);
    if (!(rate > 0)) fail_msg("no env steps/s shown");
    result_free(&r);

    /* The same through the coordinator's /metrics. */
    char http[64];
    snprintf(http, sizeof http, "http://127.0.0.1:%d", http_port);
    r = run_rlhf("status-run-http", (const char *const[]){"status", http, NULL}, 20);
    if (r.status != 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        fail_msg("rlhf status %s: exit %d: %s", http, r.status, r.err);
    }
    fprintf(stderr, "%s", r.out);
    expect_in(r.out, "rollout 1   labeler 1   learner 1", "the workers");
    shown_acc = number_after(r.out, "reward-model accuracy ");
    step = number_after(r.out, "step "), allreduce = number_after(r.out, "allreduce ");
    assert_true(shown_acc >= 0 && shown_acc <= 1);
    if (!(step > 0)) fail_msg("no learner step time shown over HTTP");
    if (!(allreduce > 0)) fail_msg("no allreduce time shown over HTTP");
    result_free(&r);

    /* Stop the run: it checkpoints and leaves nothing behind. */
    kill(pid, SIGTERM);
    double ts = now_s();
    int wst;
    while (waitpid(pid, &wst, WNOHANG) != pid) {
        if (now_s() - ts > 30) {
            kill(-pid, SIGKILL);
            fail_msg("rlhf run did not stop within 30 s of SIGTERM");
        }
        usleep(50000);
    }
    if (!WIFEXITED(wst) && !WIFSIGNALED(wst)) fail_msg("rlhf run: odd wait status");
    assert_no_children(10);

    /* A sanitizer report in any child's log fails the run too. */
    check_run_logs(out, (const char *const[]){"coordinator", "learner", "rollout-1", "labeler-1", NULL});

    /* And the real metrics plot. */
    r = run_rlhf("plot-run", (const char *const[]){"plot", out, NULL}, 30);
    if (r.status != 0) fail_msg("rlhf plot %s: exit %d: %s", out, r.status, r.err);
    snprintf(path, sizeof path, "%s/returns_vs_env_steps.svg", out);
    check_svg_file(path);
    result_free(&r);
    /* The metrics lines carry the watch's figures. */
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    char *text = slurp(path);
    assert_non_null(text);
    expect_in(text, "\"ensemble_disagreement_labelled\":", "the watch's figures in metrics.jsonl");
    expect_in(text, "\"watch_warnings\":", "the watch's count in metrics.jsonl");
    free(text);
}

int main(void) {
    const char *b = getenv("RLHF_BUILD"), *t = getenv("RLHF_TEST_TMP");
    snprintf(build_dir, sizeof build_dir, "%s", b && *b ? b : "build");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_ops.%d", t && *t ? t : "/tmp", (int)getpid());
    mkdir_p(tmp_dir);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_checker),
        cmocka_unit_test(test_kendall_tau),
        cmocka_unit_test(test_watch_returns_diverge),
        cmocka_unit_test(test_watch_healthy_silent),
        cmocka_unit_test(test_watch_accuracy),
        cmocka_unit_test(test_watch_disagreement),
        cmocka_unit_test(test_watch_silent),
        cmocka_unit_test(test_watch_replay),
        cmocka_unit_test(test_svg_ticks),
        cmocka_unit_test(test_svg_escapes_and_errors),
        cmocka_unit_test(test_plot),
        cmocka_unit_test(test_status_unreachable),
        cmocka_unit_test(test_status_http),
        cmocka_unit_test(test_status_real_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
