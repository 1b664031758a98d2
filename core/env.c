/* env.c - placeholder until the environments land. */
#include "env.h"
static const char *const ids[] = {NULL};
const char *const *env_ids(void) { return ids; }
int env_replay_file(const char *path, double tol, FILE *out, char *err, size_t errlen) {
    (void)path; (void)tol; (void)out; snprintf(err, errlen, "not built yet"); return -1;
}
