/* feed_coord.c - the coordinator feed (see feed.h): trajectory batches from
 * the rollout workers and labels from the labelers, both relayed by the
 * coordinator, through learnerlink.h. publish() sends the weights back.
 *
 * next() blocks (polling the link, so heartbeats and reconnections go on)
 * until a batch is waiting; in a feedback mode that learns a reward model
 * it also waits for the first labelling round, because the local feed's
 * first update already uses a reward model fit to the initial labels, and
 * PPO on an untrained reward model only teaches the policy noise.
 *
 * Labels arrive one at a time with segments owned by the link (valid until
 * the next label is taken), so each label's segments are copied into our
 * own segstore and its indices renumbered: what next() returns stays valid
 * until the next call, as feed.h promises.
 *
 * Owns the link, the batch, the segstore and the label array.
 *
 * Checkpointed state: the link's progress (env steps, answered queries and
 * the label cursor) in checkpoint_loop_t and extra; restore() registers
 * again with that progress, so the coordinator resends the labels after
 * the cursor and resumes the label schedule where the learner was. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "feed.h"
#include "learnerlink.h"
#include "util.h"

#define EXTRA_VERSION 1

typedef struct {
    feed_t base;
    feed_coord_options_t opt;
    learnerlink_options_t lo;   /* opt.link, with the progress to resume from */
    learnerlink_t *ll;
    job_t job;                  /* the Welcome's, loaded from its text */
    char *job_text;
    traj_t *batch;
    segstore_t *segs;           /* segments of this iteration's labels */
    label_t *labels;
    int n_labels, cap;
    int fits;                   /* rounds completed so far: RL waits for the first */
    int refit_pending;          /* a round completed since the last publish() */
    uint64_t reward_version;
    int shut_down;
} coord_feed_t;

static int stopped(const coord_feed_t *s) { return s->opt.stop && *s->opt.stop; }

/* Connects with s->lo and waits for the Welcome. 0, 1 when stopped, or -1
 * with err. */
static int link_open(coord_feed_t *s, char *err, size_t errlen) {
    learnerlink_destroy(&s->ll);
    s->ll = learnerlink_new(&s->lo, err, errlen);
    if (!s->ll) return -1;
    double end = now_s() + (s->opt.welcome_timeout_ms > 0 ? s->opt.welcome_timeout_ms : 60000) / 1e3;
    while (!learnerlink_job(s->ll)) {
        if (stopped(s)) return 1;
        if (now_s() > end) {
            snprintf(err, errlen, "no Welcome from %s in %.0f s", s->lo.endpoint,
                     (s->opt.welcome_timeout_ms > 0 ? s->opt.welcome_timeout_ms : 60000) / 1e3);
            return -1;
        }
        if (learnerlink_poll(s->ll, 100) < 0) {
            snprintf(err, errlen, "%s", learnerlink_error(s->ll));
            return -1;
        }
    }
    return 0;
}

/* Copies one answered query in (its segments renumbered into s->segs). */
static void take_label(coord_feed_t *s, const learnerlink_label_t *lb) {
    if (s->n_labels == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->labels = reallocCheck(s->labels, sizeof(label_t) * s->cap);
    }
    label_t *l = &s->labels[s->n_labels++];
    *l = lb->label;
    for (int j = 0; j < l->k; j++) {
        int i = lb->label.seg[j];
        l->seg[j] = segstore_add(s->segs, segstore_obs(lb->segs, i), segstore_act(lb->segs, i),
                                 segstore_true_r(lb->segs, i), segstore_absorbing(lb->segs, i));
    }
}

static int coord_next(feed_t *f, learner_t *l, long long it, feed_batch_t *out, char *err, size_t errlen) {
    (void)it;
    coord_feed_t *s = (coord_feed_t *)f;
    memset(out, 0, sizeof *out);
    s->segs->n = 0;
    s->n_labels = 0;
    int needs_labels = l->rm != NULL;
    double t0 = now_s();
    for (;;) {
        if (stopped(s)) return 1;
        int ev = learnerlink_poll(s->ll, 50);
        if (ev < 0) {
            snprintf(err, errlen, "%s", learnerlink_error(s->ll));
            return -1;
        }
        learnerlink_label_t lb;
        while (learnerlink_next_label(s->ll, &lb) == 1) {
            out->asked++;
            if (lb.has_label) take_label(s, &lb);
            if (lb.round_done) {
                out->refit = 1;
                s->fits++;
            }
        }
        if (ev & LL_SHUTDOWN) {
            log_info("the coordinator ended the run");
            return 1;
        }
        /* Labels already taken go out with this batch, so only wait for the
         * first round if none has completed yet. */
        if (needs_labels && s->fits == 0) continue;
        if (learnerlink_next_batch(s->ll, s->batch) == 1) break;
    }
    uint64_t cursor, steps, answered;
    learnerlink_progress(s->ll, &cursor, &steps, &answered);
    s->refit_pending |= out->refit;
    out->batch = s->batch;
    out->segs = s->segs;
    out->labels = s->labels;
    out->n_labels = s->n_labels;
    out->answered = (int)answered;
    out->env_steps = (long long)steps;
    out->t_rollout = now_s() - t0;     // waiting for the rollout workers
    return 0;
}

static int coord_publish(feed_t *f, const learner_t *l, char *err, size_t errlen) {
    coord_feed_t *s = (coord_feed_t *)f;
    (void)err;
    (void)errlen;
    /* Failures here are transient (no registration right now): the link
     * keeps the latest weights and sends them after the next Welcome. */
    if (s->refit_pending && l->rm) learnerlink_send_reward(s->ll, l->rm, ++s->reward_version);
    s->refit_pending = 0;
    learnerlink_send_policy(s->ll, l->policy, l->policy_version);
    uint64_t cursor, steps, answered;
    learnerlink_progress(s->ll, &cursor, &steps, &answered);
    if (!s->shut_down && (long long)steps >= s->job.run.total_steps) {
        /* The last update is done and its weights are out: the run is over
         * for everyone else; the learner only evaluates and reports now. */
        s->shut_down = 1;
        if (learnerlink_shutdown(s->ll, "run finished", 5000) != 0)
            log_warn("the coordinator did not acknowledge the Shutdown");
    }
    return 0;
}

/* extra: u32 version, u32 0, u64 label cursor, u64 reward version. */
static void coord_save(feed_t *f, checkpoint_loop_t *loop) {
    coord_feed_t *s = (coord_feed_t *)f;
    uint64_t cursor, steps, answered;
    learnerlink_progress(s->ll, &cursor, &steps, &answered);
    loop->env_steps = (long long)steps;
    loop->answered = (int)answered;
    unsigned char *p = mallocCheck(24);
    uint32_t head[2] = {EXTRA_VERSION, 0};
    memcpy(p, head, 8);
    memcpy(p + 8, &cursor, 8);
    memcpy(p + 16, &s->reward_version, 8);
    loop->extra = p;
    loop->extra_len = 24;
}

/* feed.h */
int feed_coord_progress(const checkpoint_loop_t *loop, learnerlink_options_t *link, char *err, size_t errlen) {
    uint32_t head[2] = {0, 0};
    if (loop->extra_len == 24) memcpy(head, loop->extra, 8);
    if (loop->extra_len != 24 || head[0] != EXTRA_VERSION) {
        snprintf(err, errlen, "the checkpoint's coordinator-feed state is malformed (a --local run's?)");
        return -1;
    }
    memcpy(&link->label_cursor, loop->extra + 8, 8);
    link->env_steps = (uint64_t)loop->env_steps;
    link->labels_answered = (uint64_t)loop->answered;
    return 0;
}

static int coord_restore(feed_t *f, const checkpoint_loop_t *loop, char *err, size_t errlen) {
    coord_feed_t *s = (coord_feed_t *)f;
    learnerlink_options_t want = s->lo;
    if (feed_coord_progress(loop, &want, err, errlen) != 0) return -1;
    memcpy(&s->reward_version, loop->extra + 16, 8);
    s->fits = s->reward_version > 0;    // the restored reward model has been fit
    /* Already registered with exactly this progress (feed_coord_progress()
     * before feed_coord_new()): keep the link. */
    if (want.label_cursor == s->lo.label_cursor && want.env_steps == s->lo.env_steps &&
        want.labels_answered == s->lo.labels_answered)
        return 0;
    s->lo = want;
    /* Register again with the restored progress: the coordinator resends
     * the labels after the cursor and resumes the schedule from there. */
    int rc = link_open(s, err, errlen);
    if (rc == 1) snprintf(err, errlen, "stopped before the coordinator's Welcome");
    return rc == 0 ? 0 : -1;
}

static void coord_destroy(feed_t **self_p) {
    coord_feed_t *s = (coord_feed_t *)*self_p;
    if (!s) return;
    learnerlink_destroy(&s->ll);
    traj_destroy(&s->batch);
    segstore_destroy(&s->segs);
    free(s->labels);
    free(s->job_text);
    free(s);
    *self_p = NULL;
}

feed_t *feed_coord_new(const feed_coord_options_t *o, char *err, size_t errlen) {
    coord_feed_t *s = callocCheck(1, sizeof *s);
    s->base.name = "coordinator";
    s->base.next = coord_next;
    s->base.publish = coord_publish;
    s->base.save = coord_save;
    s->base.restore = coord_restore;
    s->base.destroy = coord_destroy;
    s->opt = *o;
    s->lo = o->link;
    feed_t *f = &s->base;
    int rc = link_open(s, err, errlen);
    if (rc == 1) snprintf(err, errlen, "stopped before the coordinator's Welcome");
    if (rc != 0) {
        coord_destroy(&f);
        return NULL;
    }
    /* Our own copy from the text, exactly as the other ranks load it. */
    s->job_text = strdupCheck(learnerlink_job_text(s->ll));
    job_defaults(&s->job);
    char why[1024];
    if (job_load_text(&s->job, s->job_text, "the coordinator's job", why, sizeof why) != 0 ||
        job_validate(&s->job, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        coord_destroy(&f);
        return NULL;
    }
    const env_class_t *cls = env_find(s->job.env.id);   // job_validate() knows it
    int od = cls->obs_dim, ad = cls->act.discrete ? 1 : cls->act.n;
    s->batch = traj_new(s->job.ppo.n_steps, s->job.env.n_envs, od, ad);
    s->segs = segstore_new(s->job.feedback.segment_len, od, ad);
    return f;
}

const char *feed_coord_job_text(const feed_t *f) { return ((const coord_feed_t *)f)->job_text; }

learnerlink_t *feed_coord_link(feed_t *f) { return f && f->next == coord_next ? ((coord_feed_t *)f)->ll : NULL; }
