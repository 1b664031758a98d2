/* labelers.c - `rlhf labelers`: the people who may label a run
 * (labelers.h, docs/labeling.md).
 *
 *   rlhf labelers add NAME --out RUN_DIR       prints the token, once
 *   rlhf labelers list --out RUN_DIR
 *   rlhf labelers disable NAME --out RUN_DIR
 *
 * They work on RUN_DIR/feedback.db, before a run or beside a live one (the
 * coordinator reads the table on every request, so a new labeler can log in
 * at once and a disabled one is refused at once). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "labelers.h"
#include "util.h"

static int labelers_usage(void) {
    fprintf(stderr, "usage: rlhf labelers add NAME --out RUN_DIR      add a labeler; prints its token once\n"
                    "       rlhf labelers list --out RUN_DIR          the labelers and whether they are enabled\n"
                    "       rlhf labelers disable NAME --out RUN_DIR  refuse this labeler's token from now on\n");
    return 2;
}

int cmd_labelers(int argc, char **argv) {
    if (argc < 2) return labelers_usage();
    const char *sub = argv[1], *name = NULL, *dir = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rlhf labelers: --out needs the run directory\n");
                return 2;
            }
            dir = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "rlhf labelers: unknown option '%s'\n", argv[i]);
            return labelers_usage();
        } else if (!name) {
            name = argv[i];
        } else {
            fprintf(stderr, "rlhf labelers %s: unexpected '%s'\n", sub, argv[i]);
            return labelers_usage();
        }
    }
    int wants_name = strcmp(sub, "add") == 0 || strcmp(sub, "disable") == 0;
    if (!wants_name && strcmp(sub, "list") != 0) {
        fprintf(stderr, "rlhf labelers: unknown subcommand '%s'\n", sub);
        return labelers_usage();
    }
    if (wants_name && !name) {
        fprintf(stderr, "rlhf labelers %s: which labeler? (a NAME)\n", sub);
        return labelers_usage();
    }
    if (!wants_name && name) {
        fprintf(stderr, "rlhf labelers list: unexpected '%s'\n", name);
        return labelers_usage();
    }
    if (!dir || !*dir) {
        fprintf(stderr, "rlhf labelers %s: --out RUN_DIR is required (the run whose feedback.db holds the labelers)\n",
                sub);
        return 2;
    }
    char db[4200], err[1024];
    snprintf(db, sizeof db, "%s/feedback.db", dir);
    if (strcmp(sub, "add") == 0) {
        if (!labelers_name_ok(name)) {
            fprintf(stderr, "rlhf labelers add: bad labeler name '%s': use 1 to %d of A-Z a-z 0-9 _ . -\n", name,
                    LABELER_NAME_MAX);
            return 2;
        }
        /* A run directory may be made before its run: labelers first. */
        if (mkdir_p(dir) != 0) {
            fprintf(stderr, "rlhf labelers add: cannot create %s: %s\n", dir, strerror(errno));
            return 1;
        }
        char token[LABELER_TOKEN_LEN + 1];
        if (labelers_add(db, name, token, err, sizeof err) != 0) {
            fprintf(stderr, "rlhf labelers add: %s\n", err);
            return 1;
        }
        printf("labeler %s added to %s; the token is shown only now, keep it:\n", name, db);
        printf("token: %s\n", token);
        memset(token, 0, sizeof token);
        return 0;
    }
    if (access(db, F_OK) != 0) {
        fprintf(stderr, "rlhf labelers %s: %s: no feedback database (%s); add a labeler first\n", sub, db,
                strerror(errno));
        return 1;
    }
    if (strcmp(sub, "disable") == 0) {
        if (labelers_disable(db, name, err, sizeof err) != 0) {
            fprintf(stderr, "rlhf labelers disable: %s\n", err);
            return 1;
        }
        printf("labeler %s disabled: its token is refused from now on\n", name);
        return 0;
    }
    labeler_info_t *v = NULL;
    size_t n = 0;
    if (labelers_list(db, &v, &n, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf labelers list: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t)(v[i].created_us / 1000000);
        struct tm tm;
        char when[32];
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%-24s %s  added %s\n", v[i].name, v[i].disabled ? "disabled" : "enabled ", when);
    }
    if (n == 0) printf("no labelers in %s\n", db);
    free(v);
    return 0;
}
