/* httpc.h - a tiny blocking HTTP/1.1 client: one request per connection
 * ("Connection: close"), for tests, benchmarks and `rlhf status`. Not a
 * general client: no TLS, no redirects, no keep-alive.
 *
 * httpc_request() connects to host:port (a name or numeric address), sends
 * method path with extra_headers ("K: V\r\n" lines, or NULL) and body_len
 * bytes of body (a Content-Length is always sent for a body; give
 * "Content-Type: ..." in extra_headers when it matters), and reads the whole
 * response (Content-Length, chunked, or until close). The whole exchange
 * must finish within timeout_ms (<= 0: 10 s).
 *
 * Returns 0 with *status (e.g. 200) and *resp (malloc'd, NUL-terminated, the
 * body only; the caller frees it) and *resp_len; or -1 with err saying what
 * failed (connect, timeout, malformed response, a response larger than
 * HTTPC_MAX_RESPONSE), *resp then NULL. resp_len may be NULL. */
#ifndef RLHF_HTTPC_H
#define RLHF_HTTPC_H

#include <stddef.h>

#define HTTPC_MAX_RESPONSE (64u << 20)

int httpc_request(const char *host, int port, const char *method, const char *path, const char *extra_headers,
                  const char *body, size_t body_len, int timeout_ms, int *status, char **resp, size_t *resp_len,
                  char *err, size_t errlen);

#endif
