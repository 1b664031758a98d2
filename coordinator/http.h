/* http.h - the coordinator's HTTP server (libmicrohttpd) for labelers: the
 * JSON API under /api/ (docs/http-api.md), /metrics, and the web pages
 * (web_assets.h). No threads: libmicrohttpd runs in "external select" mode
 * with its own epoll set, whose one fd the coordinator adds to its
 * zmq_poll set; http_run() then handles whatever is ready, calling back into
 * the coordinator synchronously, inside the event loop.
 *
 * What it does itself: routing, the request body limit (HTTP_MAX_BODY,
 * 413 beyond), authentication of /api/ calls (Authorization: Bearer TOKEN,
 * checked with labelers_check() against the labelers table of the store's
 * database; 401 otherwise), JSON parsing of POST bodies (400 naming the
 * error), static files, and the JSON error shape {"error": "..."}.
 * What it leaves to the coordinator (the callbacks): the meaning of each
 * call.
 *
 * Owns: the libmicrohttpd daemon and the bodies of requests in progress. */
#ifndef RLHF_HTTP_H
#define RLHF_HTTP_H

#include <stddef.h>
#include <stdio.h>

#include <sqlite3.h>

#include "json.h"

#define HTTP_MAX_BODY (64 * 1024)

typedef struct http http_t;

/* An /api/ call of an authenticated labeler: method "GET" or "POST", path
 * e.g. "/api/next", body the parsed JSON of a POST (NULL for a GET). Writes
 * the JSON response to out; returns the HTTP status. For an error it
 * writes only the message into err and returns the status (4xx/5xx):
 * http.c makes the {"error": ...} body. */
typedef int (*http_api_fn)(void *arg, const char *method, const char *path, const char *labeler, const json_t *body,
                           FILE *out, char *err, size_t errlen);
/* GET /metrics (no token): Prometheus text to out. */
typedef void (*http_metrics_fn)(void *arg, FILE *out);

typedef struct {
    const char *bind;           /* IPv4 address, e.g. "127.0.0.1" */
    int port;                   /* > 0 */
    sqlite3 *db;                /* the labelers table */
    http_api_fn api;
    http_metrics_fn metrics;
    void *arg;
} http_options_t;

/* Listens. NULL with err (bad address, port in use). */
http_t *http_new(const http_options_t *o, char *err, size_t errlen);
void http_destroy(http_t **self_p);

/* The fd to poll for input (libmicrohttpd's epoll set). */
int http_fd(const http_t *self);
/* Handles what is ready, never blocking. */
void http_run(http_t *self);
/* Requests answered, by class, for the metrics. */
unsigned long long http_requests(const http_t *self, int status_class /* 2, 4, 5 */);

#endif
