/* http.c - see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "labelers.h"
#include "util.h"
#include "web_assets.h"

struct http {
    struct MHD_Daemon *d;
    http_options_t o;
    unsigned long long by_class[6];
};

/* A request in progress: its body so far. */
typedef struct {
    char *body;
    size_t len, cap;
    int too_large;
} req_t;

static enum MHD_Result send_buf(http_t *h, struct MHD_Connection *conn, int status, const char *type, char *buf,
                                size_t len, enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* The page and API come from one origin; nothing else may frame or
     * sniff them. */
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (status >= 100 && status < 600) h->by_class[status / 100]++;
    return rc;
}

static enum MHD_Result send_error(http_t *h, struct MHD_Connection *conn, int status, const char *msg) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return MHD_NO;
    fputs("{\"error\":", f);
    json_write_string(f, msg, strlen(msg));
    fputs("}\n", f);
    fclose(f);
    return send_buf(h, conn, status, "application/json", text, len, MHD_RESPMEM_MUST_FREE);
}

/* The labeler of the request's bearer token: 1 (name set), 0 none/unknown, -1 error. */
static int authenticate(http_t *h, struct MHD_Connection *conn, char *name, size_t namelen) {
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *tok = auth + 7;
    while (*tok == ' ') tok++;
    return labelers_check(h->o.db, tok, name, namelen);
}

static enum MHD_Result api(http_t *h, struct MHD_Connection *conn, const char *method, const char *url, req_t *rq) {
    char name[LABELER_NAME_MAX + 1];
    int who = authenticate(h, conn, name, sizeof name);
    if (who < 0) return send_error(h, conn, 500, "cannot read the labelers table");
    if (who == 0) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        return send_error(h, conn, 401,
                          auth ? "unknown or disabled token (rlhf labelers add NAME makes one)"
                               : "no token: send Authorization: Bearer TOKEN");
    }
    json_t *body = NULL;
    char err[512] = "";
    if (strcmp(method, "POST") == 0) {
        if (rq->too_large) {
            snprintf(err, sizeof err, "request body larger than %d bytes", HTTP_MAX_BODY);
            return send_error(h, conn, 413, err);
        }
        char perr[256];
        body = json_parse(rq->body ? rq->body : "", rq->len, perr, sizeof perr);
        if (!body) {
            snprintf(err, sizeof err, "body is not JSON: %s", perr);
            return send_error(h, conn, 400, err);
        }
        if (json_type(body) != JSON_OBJECT) {
            json_destroy(&body);
            return send_error(h, conn, 400, "body must be a JSON object");
        }
    } else if (strcmp(method, "GET") != 0) {
        return send_error(h, conn, 405, "only GET and POST");
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        json_destroy(&body);
        return MHD_NO;
    }
    int status = h->o.api(h->o.arg, method, url, name, body, f, err, sizeof err);
    fclose(f);
    json_destroy(&body);
    if (status >= 400) {
        free(text);
        return send_error(h, conn, status, err[0] ? err : "error");
    }
    return send_buf(h, conn, status, "application/json", text, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    http_t *h = cls;
    req_t *rq = *con_cls;
    if (!rq) {
        rq = callocCheck(1, sizeof *rq);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* Accumulate, up to the limit; past it, swallow and answer 413. */
        size_t n = *upload_data_size;
        if (!rq->too_large && rq->len + n <= HTTP_MAX_BODY) {
            if (rq->len + n + 1 > rq->cap) {
                rq->cap = rq->len + n + 1 + 1024;
                rq->body = reallocCheck(rq->body, rq->cap);
            }
            memcpy(rq->body + rq->len, upload_data, n);
            rq->len += n;
            rq->body[rq->len] = '\0';
        } else {
            rq->too_large = 1;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/api/", 5) == 0) return api(h, conn, method, url, rq);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return send_error(h, conn, 405, "only GET here");
    if (strcmp(url, "/metrics") == 0) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) return MHD_NO;
        h->o.metrics(h->o.arg, f);
        fclose(f);
        return send_buf(h, conn, 200, "text/plain; version=0.0.4", text, len, MHD_RESPMEM_MUST_FREE);
    }
    const web_asset_t *a = web_asset_find(url);
    if (!a) {
        char err[300];
        snprintf(err, sizeof err, "no such page: %.200s", url);
        return send_error(h, conn, 404, err);
    }
    return send_buf(h, conn, 200, a->content_type, (char *)a->data, a->len, MHD_RESPMEM_PERSISTENT);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    req_t *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *arg, const char *fmt, va_list ap) {
    (void)arg;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = '\0';
    log_warn("http: %s", msg);
}

http_t *http_new(const http_options_t *o, char *err, size_t errlen) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->bind, &a.sin_addr) != 1) {
        err_set(err, errlen, "coordinator.http_bind: '%s' is not an IPv4 address", o->bind);
        return NULL;
    }
    http_t *h = callocCheck(1, sizeof *h);
    h->o = *o;
    h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)o->port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_END);
    if (!h->d) {
        err_set(err, errlen, "cannot listen for HTTP on %s:%d (in use?)", o->bind, o->port);
        free(h);
        return NULL;
    }
    return h;
}

void http_destroy(http_t **self_p) {
    http_t *h = *self_p;
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    free(h);
    *self_p = NULL;
}

int http_fd(const http_t *h) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    return i ? i->epoll_fd : -1;
}

void http_run(http_t *h) { MHD_run(h->d); }

unsigned long long http_requests(const http_t *h, int c) { return c >= 0 && c < 6 ? h->by_class[c] : 0; }
