/* web_assets.h - the files of web/ (labeling page, status page, renderers),
 * compiled into the coordinator by web/embed.sh at build time, so the
 * coordinator serves them with nothing loaded from disk or the internet. */
#ifndef RLHF_WEB_ASSETS_H
#define RLHF_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path;           /* "/index.html", "/app.js", ... */
    const char *content_type;   /* "text/html; charset=utf-8", ... */
    const unsigned char *data;
    size_t len;
} web_asset_t;

/* The asset served at this URL path ("/" is "/index.html", "/status" is
 * "/status.html"), or NULL. */
const web_asset_t *web_asset_find(const char *path);

#endif
