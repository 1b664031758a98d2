/* status.c - `rlhf status ADDRESS [--watch] [--timeout MS] [CURVE options]`:
 * what the coordinator's /metrics shows, in a terminal: workers, queue
 * depth, labels, env steps and env steps/s, policy lag, and the learner's
 * latest figures (reward-model accuracy, ensemble disagreement, returns,
 * learner step time, allreduce time, reward-hacking watch warnings).
 *
 *   tcp://HOST:PORT   asks the coordinator for its Status over ZeroMQ (it
 *                     answers anyone, registered or not; with CURVE give
 *                     --curve-secret and --curve-server, as every peer does);
 *   http://HOST:PORT  reads /metrics from the coordinator's HTTP port.
 *
 * env steps/s over ZeroMQ is the difference of two Status answers: a
 * single look takes two, 1 s apart; --watch refreshes every second and
 * uses consecutive ones. Nothing answering within --timeout (default 3000
 * ms) is an error naming the address, never a hang; with --watch the error
 * is shown and it keeps trying.
 *
 * Exit status: 0 shown; 1 no answer (or a malformed one); 2 a bad command
 * line. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "httpc.h"
#include "peer.h"
#include "transport.h"
#include "util.h"
#include "wire.h"

#define MAX_METRICS 64

typedef struct {
    char phase[32];
    double rollout, labeler, learner;       /* workers */
    double queue_depth, batches_queued, leased;
    double labels, env_steps, env_steps_per_s;
    double policy_version, reward_version;
    double lag_mean, lag_n;                 /* policy lag of the batches, versions */
    int n_metrics;                          /* the learner's latest Status */
    char names[MAX_METRICS][64];
    double values[MAX_METRICS];
    double at;                              /* when it was taken (now_s) */
} snap_t;

static void snap_init(snap_t *s) {
    memset(s, 0, sizeof *s);
    double *f[] = {&s->rollout, &s->labeler, &s->learner, &s->queue_depth, &s->batches_queued, &s->leased,
                   &s->labels, &s->env_steps, &s->env_steps_per_s, &s->policy_version, &s->reward_version,
                   &s->lag_mean, &s->lag_n};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) *f[i] = NAN;
}

static void snap_metric(snap_t *s, const char *name, double v) {
    for (int i = 0; i < s->n_metrics; i++)
        if (strcmp(s->names[i], name) == 0) {
            s->values[i] = v;
            return;
        }
    if (s->n_metrics == MAX_METRICS || strlen(name) >= sizeof s->names[0]) return;
    memcpy(s->names[s->n_metrics], name, strlen(name) + 1);
    s->values[s->n_metrics++] = v;
}

static double metric(const snap_t *s, const char *name) {
    for (int i = 0; i < s->n_metrics; i++)
        if (strcmp(s->names[i], name) == 0) return s->values[i];
    return NAN;
}

/* ---- tcp:// -------------------------------------------------------------------- */

typedef struct {
    transport_t *t;
    transport_sock_t *sock;
    uint64_t seq;
} zclient_t;

static int zclient_open(zclient_t *z, const char *endpoint, const char *secret, const char *server, char *err,
                        size_t errlen) {
    transport_keypair_t keys;
    char server_pub[TRANSPORT_Z85_LEN + 1];
    if (secret && peer_load_keys(secret, server, &keys, server_pub, err, errlen) != 0) return -1;
    transport_options_t o;
    transport_options_default(&o);
    o.linger_ms = 0;
    z->t = transport_new(&o);
    if (!z->t) {
        snprintf(err, errlen, "cannot make a ZeroMQ context");
        return -1;
    }
    z->sock = transport_client_new(z->t, endpoint, secret ? &keys : NULL, secret ? server_pub : NULL, err, errlen);
    memset(&keys, 0, sizeof keys);
    return z->sock ? 0 : -1;
}

static void zclient_close(zclient_t *z) {
    transport_sock_destroy(&z->sock);
    transport_destroy(&z->t);
}

static void from_status(snap_t *s, const Rlhf__Status *st) {
    if (st->phase) snprintf(s->phase, sizeof s->phase, "%s", st->phase);
    if (st->has_policy_version) s->policy_version = (double)st->policy_version;
    if (st->has_reward_version) s->reward_version = (double)st->reward_version;
    double lag_sum = 0, lag_n = 0;
    for (size_t i = 0; i < st->n_counters; i++) {
        const char *n = st->counters[i]->name;
        double v = (double)st->counters[i]->value;
        if (!n) continue;
        if (strcmp(n, "peers.rollout") == 0) s->rollout = v;
        else if (strcmp(n, "peers.labeler") == 0) s->labeler = v;
        else if (strcmp(n, "peers.learner") == 0) s->learner = v;
        else if (strcmp(n, "env_steps") == 0) s->env_steps = v;
        else if (strcmp(n, "labels.answered") == 0) s->labels = v;
        else if (strcmp(n, "queries.open") == 0) s->queue_depth = v;
        else if (strcmp(n, "queue.batches") == 0) s->batches_queued = v;
        else if (strncmp(n, "lag.", 4) == 0) {
            /* lag.K (K versions behind) and lag.K+ (K or more: counted as K). */
            double k = atof(n + 4);
            lag_sum += k * v;
            lag_n += v;
        }
    }
    if (lag_n > 0) s->lag_mean = lag_sum / lag_n;
    s->lag_n = lag_n;
    for (size_t i = 0; i < st->n_metrics; i++)
        if (st->metrics[i]->name) snap_metric(s, st->metrics[i]->name, st->metrics[i]->has_value ? st->metrics[i]->value : NAN);
}

/* One Status request and its answer, within timeout_ms. */
static int zclient_ask(zclient_t *z, const char *endpoint, long timeout_ms, snap_t *s, char *err, size_t errlen) {
    double end = now_s() + timeout_ms / 1e3;
    Rlhf__Status st;
    rlhf__status__init(&st);
    st.has_request = 1, st.request = 1;
    Rlhf__Envelope env;
    wire_envelope_init(&env, "rlhf-status", ++z->seq);
    env.body_case = RLHF__ENVELOPE__BODY_STATUS;
    env.status = &st;
    uint64_t seq = z->seq;
    /* A DEALER refuses to send (EAGAIN) until it has a connection. */
    while (transport_send(z->sock, NULL, 0, &env) != 0) {
        if (errno != EAGAIN || now_s() >= end) {
            if (transport_client_handshake_failed(z->sock))
                snprintf(err, errlen, "%s refused the CURVE handshake (wrong --curve-server key, or our key is not "
                                      "on its allow-list)", endpoint);
            else
                snprintf(err, errlen, "no coordinator answering at %s within %.1f s", endpoint, timeout_ms / 1e3);
            return -1;
        }
        transport_poll(z->t, NULL, 0, 20);
    }
    for (;;) {
        double left = end - now_s();
        if (left <= 0) {
            snprintf(err, errlen, "no Status answer from %s within %.1f s", endpoint, timeout_ms / 1e3);
            return -1;
        }
        zmq_pollitem_t it = {transport_sock_zmq(z->sock), 0, ZMQ_POLLIN, 0};
        if (transport_poll(z->t, &it, 1, (long)(left * 1e3) + 1) <= 0 || !(it.revents & ZMQ_POLLIN)) continue;
        Rlhf__Envelope *in = NULL;
        int rc;
        while ((rc = transport_recv(z->sock, NULL, &in)) != -1) {
            if (rc != 0) continue;
            int mine = in->body_case == RLHF__ENVELOPE__BODY_STATUS && in->has_in_reply_to && in->in_reply_to == seq;
            if (in->body_case == RLHF__ENVELOPE__BODY_ERROR && in->has_in_reply_to && in->in_reply_to == seq) {
                snprintf(err, errlen, "%s answered with an error: %s", endpoint,
                         in->error->text ? in->error->text : "(no text)");
                wire_free(&in);
                return -1;
            }
            if (mine) {
                snap_init(s);
                from_status(s, in->status);
                s->at = now_s();
                wire_free(&in);
                return 0;
            }
            wire_free(&in);     // an answer to an earlier request that timed out
        }
    }
}

/* ---- http:// ------------------------------------------------------------------- */

/* One Prometheus sample line: name, the value of label `want` (or "" when
 * none), the value. Returns 0, or -1 for a comment or an unparsable line. */
static int prom_line(const char *line, char *name, size_t nlen, const char *want, char *label, size_t llen,
                     double *value) {
    if (line[0] == '#' || line[0] == '\0') return -1;
    size_t i = 0;
    while (line[i] && line[i] != '{' && line[i] != ' ') i++;
    if (i == 0 || i >= nlen) return -1;
    memcpy(name, line, i);
    name[i] = '\0';
    label[0] = '\0';
    const char *p = line + i;
    if (*p == '{') {
        const char *close = strchr(p, '}');
        if (!close) return -1;
        char key[64];
        snprintf(key, sizeof key, "%s=\"", want);
        const char *k = strstr(p, key);
        if (k && k < close) {
            k += strlen(key);
            const char *q = strchr(k, '"');
            if (q && q < close && (size_t)(q - k) < llen) {
                memcpy(label, k, (size_t)(q - k));
                label[q - k] = '\0';
            }
        }
        p = close + 1;
    }
    char *end;
    while (*p == ' ') p++;
    *value = strtod(p, &end);   // "NaN", "+Inf" included
    return end == p ? -1 : 0;
}

static int http_ask(const char *host, int port, const char *address, long timeout_ms, snap_t *s, char *err,
                    size_t errlen) {
    int status = 0;
    char *body = NULL;
    char why[512];
    if (httpc_request(host, port, "GET", "/metrics", NULL, NULL, 0, (int)timeout_ms, &status, &body, NULL, why,
                      sizeof why) != 0) {
        snprintf(err, errlen, "%s/metrics: %s", address, why);
        return -1;
    }
    if (status != 200) {
        snprintf(err, errlen, "%s/metrics answered HTTP %d", address, status);
        free(body);
        return -1;
    }
    snap_init(s);
    s->at = now_s();
    double lag_sum = NAN, lag_count = NAN;
    int samples = 0;
    for (char *line = body, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char name[128], kind[64];
        double v;
        if (prom_line(line, name, sizeof name, "kind", kind, sizeof kind, &v) != 0) continue;
        samples++;
        if (strcmp(name, "rlhf_workers") == 0) {
            if (strcmp(kind, "rollout") == 0) s->rollout = v;
            else if (strcmp(kind, "labeler") == 0) s->labeler = v;
            else if (strcmp(kind, "learner") == 0) s->learner = v;
        } else if (strcmp(name, "rlhf_queue_depth") == 0) s->queue_depth = v;
        else if (strcmp(name, "rlhf_queries_leased") == 0) s->leased = v;
        else if (strcmp(name, "rlhf_labels_total") == 0) s->labels = v;
        else if (strcmp(name, "rlhf_env_steps_total") == 0) s->env_steps = v;
        else if (strcmp(name, "rlhf_env_steps_per_second") == 0) s->env_steps_per_s = v;
        else if (strcmp(name, "rlhf_policy_version") == 0) s->policy_version = v;
        else if (strcmp(name, "rlhf_policy_lag_sum") == 0) lag_sum = v;
        else if (strcmp(name, "rlhf_policy_lag_count") == 0) lag_count = v;
        else if (strncmp(name, "rlhf_", 5) == 0 && strncmp(name, "rlhf_policy_lag", 15) != 0)
            snap_metric(s, name + 5, v);    // the learner's Status metrics, and the rest
    }
    free(body);
    if (samples == 0) {
        snprintf(err, errlen, "%s/metrics holds no samples (not the coordinator's metrics?)", address);
        return -1;
    }
    if (lag_count > 0) s->lag_mean = lag_sum / lag_count;
    s->lag_n = lag_count;
    snprintf(s->phase, sizeof s->phase, "%s", "running");
    return 0;
}

/* ---- showing it ---------------------------------------------------------------- */

static void num(char *dst, size_t len, double v, const char *fmt) {
    if (isfinite(v)) snprintf(dst, len, fmt, v);
    else snprintf(dst, len, "-");
}

static void show(FILE *f, const char *address, const snap_t *s) {
    char a[64], b[64], c[64], d[64];
    fprintf(f, "coordinator  %s  (%s)\n", address, s->phase[0] ? s->phase : "?");
    num(a, sizeof a, s->rollout, "%.0f"), num(b, sizeof b, s->labeler, "%.0f"), num(c, sizeof c, s->learner, "%.0f");
    fprintf(f, "workers      rollout %s   labeler %s   learner %s\n", a, b, c);
    num(a, sizeof a, s->queue_depth, "%.0f"), num(b, sizeof b, s->leased, "%.0f"),
        num(c, sizeof c, s->batches_queued, "%.0f");
    fprintf(f, "queue        depth %s open queries", a);
    if (isfinite(s->leased)) fprintf(f, " (%s leased)", b);
    if (isfinite(s->batches_queued)) fprintf(f, "   %s trajectory batches queued", c);
    fputc('\n', f);
    num(a, sizeof a, s->labels, "%.0f");
    fprintf(f, "labels       %s answered\n", a);
    num(a, sizeof a, s->env_steps, "%.0f"), num(b, sizeof b, s->env_steps_per_s, "%.0f");
    fprintf(f, "env steps    %s   %s steps/s\n", a, b);
    num(a, sizeof a, s->policy_version, "%.0f"), num(b, sizeof b, s->lag_mean, "%.2f"),
        num(c, sizeof c, s->lag_n, "%.0f");
    fprintf(f, "policy       version %s   lag %s versions behind on average (over %s batches)\n", a, b, c);
    num(a, sizeof a, metric(s, "reward_model_accuracy"), "%.3f");
    num(b, sizeof b, metric(s, "ensemble_disagreement"), "%.4g");
    num(c, sizeof c, metric(s, "iteration"), "%.0f");
    fprintf(f, "learner      iteration %s   reward-model accuracy %s   ensemble disagreement %s\n", c, a, b);
    num(a, sizeof a, metric(s, "true_return"), "%.1f"), num(b, sizeof b, metric(s, "learned_return"), "%.1f");
    fprintf(f, "             true return %s   learned return %s\n", a, b);
    num(a, sizeof a, metric(s, "learner_step_seconds"), "%.4f");
    num(b, sizeof b, 1e3 * metric(s, "allreduce_seconds"), "%.2f");
    num(c, sizeof c, metric(s, "ranks"), "%.0f"), num(d, sizeof d, metric(s, "watch_warnings"), "%.0f");
    fprintf(f, "             step %s s   allreduce %s ms   ranks %s   reward-hacking warnings %s\n", a, b, c, d);
    if (s->n_metrics == 0) fprintf(f, "             (no Status from the learner yet)\n");
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { interrupted = sig; }

static int usage(FILE *f) {
    fprintf(f, "usage: rlhf status tcp://HOST:PORT|http://HOST:PORT [--watch] [--timeout MS]\n"
               "                   [--curve-secret PATH.key --curve-server COORDINATOR.pub]\n");
    return 2;
}

int cmd_status(int argc, char **argv) {
    const char *address = NULL, *secret = NULL, *server = NULL;
    int watch = 0;
    long timeout_ms = 3000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return usage(stdout), 0;
        if (strcmp(a, "--watch") == 0) {
            watch = 1;
        } else if (strcmp(a, "--timeout") == 0 || strcmp(a, "--curve-secret") == 0 ||
                   strcmp(a, "--curve-server") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rlhf status: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--timeout") == 0) {
                char *end;
                timeout_ms = strtol(v, &end, 10);
                if (*end || end == v || timeout_ms <= 0 || timeout_ms > 3600000) {
                    fprintf(stderr, "rlhf status: --timeout: expected milliseconds (1..3600000), got '%s'\n", v);
                    return 2;
                }
            } else if (strcmp(a, "--curve-secret") == 0) {
                secret = v;
            } else {
                server = v;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "rlhf status: unknown option '%s'\n", a);
            return usage(stderr);
        } else if (address) {
            fprintf(stderr, "rlhf status: more than one address ('%s', '%s')\n", address, a);
            return 2;
        } else {
            address = a;
        }
    }
    if (!address) return usage(stderr);
    if (!secret != !server) {
        fprintf(stderr, "rlhf status: CURVE needs both --curve-secret and --curve-server\n");
        return 2;
    }
    int is_tcp = strncmp(address, "tcp://", 6) == 0, is_http = strncmp(address, "http://", 7) == 0;
    char host[256] = "";
    int port = 0;
    if (is_http) {
        const char *hp = address + 7, *colon = strrchr(hp, ':');
        char *end = NULL;
        long p = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof host || p <= 0 || p > 65535 ||
            (*end && strcmp(end, "/") != 0 && strcmp(end, "/metrics") != 0)) {
            fprintf(stderr, "rlhf status: '%s': expected http://HOST:PORT\n", address);
            return 2;
        }
        memcpy(host, hp, (size_t)(colon - hp));
        host[colon - hp] = '\0';
        port = (int)p;
        if (secret) {
            fprintf(stderr, "rlhf status: CURVE options are for a tcp:// address\n");
            return 2;
        }
    } else if (is_tcp) {
        const char *colon = strrchr(address + 6, ':');
        if (!colon || colon == address + 6 || atoi(colon + 1) <= 0) {
            fprintf(stderr, "rlhf status: '%s': expected tcp://HOST:PORT\n", address);
            return 2;
        }
    } else {
        fprintf(stderr, "rlhf status: '%s': expected tcp://HOST:PORT (the coordinator's ZeroMQ address) or "
                        "http://HOST:PORT (its HTTP port)\n",
                address);
        return 2;
    }
    log_set_level(LOG_ERROR);   // the transport's connection notes are not the answer
    char err[1024];
    zclient_t z = {0};
    if (is_tcp && zclient_open(&z, address, secret, server, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf status: %s\n", err);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int tty = isatty(STDOUT_FILENO), rc = 0, have_prev = 0;
    snap_t prev, cur;
    snap_init(&prev);
    while (!interrupted) {
        double t0 = now_s();
        int got = is_tcp ? zclient_ask(&z, address, timeout_ms, &cur, err, sizeof err)
                         : http_ask(host, port, address, timeout_ms, &cur, err, sizeof err);
        if (got == 0 && is_tcp) {
            /* env steps/s: two answers apart (the first look takes a second one). */
            if (!have_prev && !watch) {
                prev = cur;
                have_prev = 1;
                usleep(1000000);
                continue;
            }
            if (have_prev && cur.at > prev.at && cur.env_steps >= prev.env_steps)
                cur.env_steps_per_s = (cur.env_steps - prev.env_steps) / (cur.at - prev.at);
        }
        if (watch && tty) fputs("\033[H\033[2J", stdout);
        if (got == 0) {
            show(stdout, address, &cur);
            prev = cur;
            have_prev = 1;
            rc = 0;
        } else {
            fprintf(watch ? stdout : stderr, "rlhf status: %s%s\n", err, watch ? "; trying again" : "");
            have_prev = 0;
            rc = 1;
        }
        fflush(stdout);
        if (!watch) break;
        double left = 1.0 - (now_s() - t0);
        if (left > 0) usleep((useconds_t)(left * 1e6));
    }
    zclient_close(&z);
    return rc;
}
