/* httpc.c - see httpc.h. A non-blocking socket driven with poll() so one
 * deadline bounds connect, send and receive together. */
#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

typedef struct {
    int fd;
    double deadline;
    char *err;
    size_t errlen;
} conn_t;

static int wait_fd(conn_t *c, short events, const char *what) {
    for (;;) {
        double left = c->deadline - now_s();
        if (left <= 0) {
            err_set(c->err, c->errlen, "timed out while %s", what);
            return -1;
        }
        struct pollfd p = {c->fd, events, 0};
        int rc = poll(&p, 1, (int)(left * 1000.0) + 1);
        if (rc > 0) return 0;
        if (rc < 0 && errno != EINTR) {
            err_set(c->err, c->errlen, "poll: %s", strerror(errno));
            return -1;
        }
    }
}

static int connect_to(conn_t *c, const char *host, int port) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        err_set(c->err, c->errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int ok = -1;
    for (struct addrinfo *a = res; a && ok != 0; a = a->ai_next) {
        c->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (c->fd < 0) continue;
        if (connect(c->fd, a->ai_addr, a->ai_addrlen) == 0) {
            ok = 0;
            break;
        }
        if (errno == EINPROGRESS && wait_fd(c, POLLOUT, "connecting") == 0) {
            int e = 0;
            socklen_t el = sizeof e;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (e == 0) {
                ok = 0;
                break;
            }
            errno = e;
        }
        err_set(c->err, c->errlen, "connect to %s:%d: %s", host, port, strerror(errno));
        close(c->fd);
        c->fd = -1;
        if (now_s() >= c->deadline) break;
    }
    freeaddrinfo(res);
    return ok;
}

static int send_all(conn_t *c, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w, n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(c, POLLOUT, "sending") != 0) return -1;
            continue;
        }
        err_set(c->err, c->errlen, "send: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Decodes a chunked body in place. Returns its length, or -1. */
static long dechunk(char *b, size_t n) {
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        if (in >= n) return -1;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *nl = memchr(b + in, '\n', n - in);
        if (!nl || end == b + in) return -1;
        in = (size_t)(nl - b) + 1;
        if (sz == 0) return (long)out;
        if (sz > n - in) return -1;
        memmove(b + out, b + in, sz);
        out += sz, in += sz;
        if (in < n && b[in] == '\r') in++;
        if (in < n && b[in] == '\n') in++;
    }
}

int httpc_request(const char *host, int port, const char *method, const char *path, const char *extra_headers,
                  const char *body, size_t body_len, int timeout_ms, int *status, char **resp, size_t *resp_len,
                  char *err, size_t errlen) {
    *resp = NULL;
    if (resp_len) *resp_len = 0;
    conn_t c = {-1, now_s() + (timeout_ms > 0 ? timeout_ms : 10000) / 1000.0, err, errlen};
    if (connect_to(&c, host, port) != 0) return -1;
    char *head = NULL;
    int hn = asprintf(&head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s", method, path, host, port,
                      extra_headers ? extra_headers : "");
    if (hn < 0) {
        close(c.fd);
        err_set(err, errlen, "out of memory");
        return -1;
    }
    char cl[64];
    int cn = body || body_len ? snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", body_len)
                              : snprintf(cl, sizeof cl, "\r\n");
    int rc = send_all(&c, head, (size_t)hn);
    free(head);
    if (rc == 0) rc = send_all(&c, cl, (size_t)cn);
    if (rc == 0 && body_len) rc = send_all(&c, body, body_len);
    if (rc != 0) {
        close(c.fd);
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = mallocCheck(cap + 1);
    size_t hdr_end = 0;
    long long content_length = -1;
    int chunked = 0;
    for (;;) {
        if (hdr_end && content_length >= 0 && n - hdr_end >= (size_t)content_length) break;
        if (n == cap) {
            if (cap >= HTTPC_MAX_RESPONSE) {
                err_set(err, errlen, "response larger than %u bytes", HTTPC_MAX_RESPONSE);
                goto fail;
            }
            cap *= 2;
            buf = reallocCheck(buf, cap + 1);
        }
        ssize_t r = recv(c.fd, buf + n, cap - n, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(&c, POLLIN, "receiving") != 0) goto fail;
                continue;
            }
            err_set(err, errlen, "recv: %s", strerror(errno));
            goto fail;
        }
        n += (size_t)r;
        buf[n] = '\0';
        if (!hdr_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            hdr_end = (size_t)(e - buf) + 4;
            /* Headers: status line, then Content-Length / Transfer-Encoding. */
            int st = 0;
            if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1 || st < 100 || st > 999) {
                err_set(err, errlen, "malformed status line");
                goto fail;
            }
            *status = st;
            for (char *line = strstr(buf, "\r\n") + 2; line < e; line = strstr(line, "\r\n") + 2) {
                if (strncasecmp(line, "Content-Length:", 15) == 0) content_length = strtoll(line + 15, NULL, 10);
                else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked") &&
                         strstr(line, "chunked") < strstr(line, "\r\n"))
                    chunked = 1;
            }
            if (chunked) content_length = -1;
            if (strcmp(method, "HEAD") == 0) content_length = 0;
        }
    }
    close(c.fd);
    c.fd = -1;
    if (!hdr_end) {
        err_set(err, errlen, n ? "connection closed inside the response headers" : "connection closed with no response");
        free(buf);
        return -1;
    }
    size_t blen = n - hdr_end;
    if (content_length >= 0 && blen < (size_t)content_length) {
        err_set(err, errlen, "connection closed after %zu of %lld body bytes", blen, content_length);
        free(buf);
        return -1;
    }
    if (content_length >= 0) blen = (size_t)content_length;
    memmove(buf, buf + hdr_end, blen);
    if (chunked) {
        long d = dechunk(buf, blen);
        if (d < 0) {
            err_set(err, errlen, "malformed chunked body");
            free(buf);
            return -1;
        }
        blen = (size_t)d;
    }
    buf[blen] = '\0';
    *resp = buf;
    if (resp_len) *resp_len = blen;
    return 0;
fail:
    if (c.fd >= 0) close(c.fd);
    free(buf);
    return -1;
}
