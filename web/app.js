// app.js - the labeling page. Shows the query the coordinator leased to this
// labeler (GET /api/next) as synchronised canvas animations, takes the answer
// from the keyboard or the buttons and stores it (POST /api/labels), lists
// the labeler's recent answers with undo (GET /api/recent, POST /api/undo).
//
// Never losing an answer: each answer gets one idempotency id when it is
// given, and is written to the outbox in localStorage before it is sent.
// Network errors and 5xx retry the SAME body with the SAME id until the
// coordinator answers 200 (the coordinator stores an id once, so a retry of
// an answer whose 200 was lost is reported "duplicate", not stored twice);
// only then is it taken out of the outbox and shown "saved". A reload or a
// new sign-in sends what is still in the outbox first. A 4xx other than 401
// is final (the coordinator says what is wrong; retrying cannot help).
'use strict';

(function () {
    const { api, el, $, sleep, AuthError, HttpError, NetworkError } = RLHF;

    const OUTBOX_KEY = 'rlhf.outbox';
    const SPEEDS = [0.25, 0.5, 1, 2, 4];
    const POLL_EMPTY_MS = 2000;
    const RATING_WORDS = ['', 'very bad', 'bad', 'poor', 'so-so', 'fair', 'good', 'very good'];

    const S = {
        query: null,            // the query shown (GET /api/next's "query")
        shownAt: 0,             // Date.now() when it was shown
        busy: false,            // an answer is being saved
        ranking: [],            // ranking kind: positions picked so far, best first
        clips: [],              // {canvas, seg, renderer, failed}
        player: { playing: true, speed: 1, pos: 0, last: 0, len: 1, hold: 0, fps: 30, drawn: -1 },
        recent: [],
        lastSaved: null,        // label id of the answer saved last (U undoes it)
        myLabels: 0,
        session: [],            // seconds spent per answer this session
        timers: new Set(),
        epoch: 0,               // bumps on sign-out: stale async work stops
    };

    // ---- small helpers ---------------------------------------------------

    function later(fn, ms) {
        const t = setTimeout(() => {
            S.timers.delete(t);
            fn();
        }, ms);
        S.timers.add(t);
        return t;
    }

    function clearTimers() {
        for (const t of S.timers) clearTimeout(t);
        S.timers.clear();
    }

    function banner(text, kind) {
        const b = $('#banner');
        if (!text) {
            b.hidden = true;
            b.textContent = '';
            return;
        }
        b.hidden = false;
        b.className = 'banner ' + (kind || 'error');
        b.textContent = text;
    }

    let toastTimer = 0;
    function toast(text, kind) {
        let t = $('#toast');
        if (!t) {
            t = el('div', { id: 'toast', class: 'toast', role: 'status', 'aria-live': 'polite' });
            document.body.append(t);
        }
        t.className = 'toast show ' + (kind || '');
        t.textContent = text;
        clearTimeout(toastTimer);
        toastTimer = setTimeout(() => (t.className = 'toast'), 2600);
    }

    function setSaveState(state, text, labelId) {
        const s = $('#save-state');
        s.dataset.state = state;
        if (labelId) s.dataset.labelId = labelId;
        s.textContent = text || '';
    }

    function setStats(data) {
        if (data.labeler !== undefined) $('#labeler').textContent = data.labeler;
        if (data.my_labels !== undefined) S.myLabels = data.my_labels;
        $('#my-labels').textContent = S.myLabels;
        if (data.queue_depth !== undefined) $('#queue-depth').textContent = data.queue_depth;
        $('#stats').hidden = false;
    }

    // Query ids are 64-bit numbers: their last digits tell them apart.
    function shortId(id) {
        id = String(id);
        return id.length > 8 ? '…' + id.slice(-6) : id;
    }

    // ---- the outbox ------------------------------------------------------

    function outboxRead() {
        try {
            const v = JSON.parse(localStorage.getItem(OUTBOX_KEY) || '[]');
            return Array.isArray(v) ? v : [];
        } catch (e) {
            return S.memOutbox || [];
        }
    }

    function outboxWrite(items) {
        S.memOutbox = items;
        try {
            localStorage.setItem(OUTBOX_KEY, JSON.stringify(items));
        } catch (e) { /* storage off: memory only, still retried in this tab */ }
    }

    function outboxAdd(item) {
        outboxWrite(outboxRead().concat([item]));
    }

    function outboxRemove(id) {
        outboxWrite(outboxRead().filter((x) => x.body.idempotency_id !== id));
    }

    // Sends one answer until the coordinator takes it (200) or refuses it
    // (4xx). Retries forever on network errors and 5xx, same id each time.
    // Rejects with AuthError (the item stays in the outbox) or HttpError.
    async function deliver(item) {
        const epoch = S.epoch;
        for (let attempt = 1; ; attempt++) {
            try {
                const r = await api('POST', '/api/labels', item.body, item.token);
                outboxRemove(item.body.idempotency_id);
                return r;
            } catch (e) {
                if (e instanceof AuthError) throw e;
                const transient = e instanceof NetworkError || (e instanceof HttpError && (e.status >= 500 || e.status === 429));
                if (!transient) {
                    outboxRemove(item.body.idempotency_id);
                    throw e;
                }
                if (epoch !== S.epoch) throw new AuthError('signed out');
                const wait = Math.min(500 * 2 ** Math.min(attempt - 1, 4), 5000);
                setSaveState('retrying', 'not saved yet, retrying…');
                banner('Your answer is kept and will be sent: ' + e.message + ' (attempt ' + attempt + ')', 'warn');
                await sleep(wait);
            }
        }
    }

    // Answers left over from an earlier page (reload, lost connection) for
    // this token go first, before a new query is asked for.
    async function flushOutbox(token) {
        const mine = outboxRead().filter((x) => x.token === token);
        for (const item of mine) {
            setSaveState('saving', 'sending an earlier answer…');
            try {
                const r = await deliver(item);
                setSaveState('saved', 'earlier answer saved', r.label_id);
            } catch (e) {
                if (e instanceof AuthError) throw e;
                toast('An earlier answer was refused: ' + e.message, 'error');
            }
        }
        banner('');
    }

    // ---- answers ---------------------------------------------------------

    // An answer as /api/recent gives it ("left", "right", "equal",
    // "cant_tell", "5" for a rating, "2,0,1" for a ranking), in words.
    function describe(kind, a) {
        if (a === null || a === undefined) return '?';
        if (typeof a === 'string') {
            const word = { left: 'left better', right: 'right better', equal: 'equal', cant_tell: "can't tell" }[a];
            if (word) return word;
            if (kind === 'rating' && /^\d+$/.test(a)) return 'rated ' + a;
            if (kind === 'ranking' && /^\d+(,\d+)*$/.test(a)) return describe(kind, a.split(',').map(Number));
            return a;
        }
        if (typeof a === 'number') return 'rated ' + a;
        if (Array.isArray(a)) return 'ranked ' + a.map((i) => i + 1).join(' › ');
        if (a.cant_tell === true) return "can't tell";
        if (a.preference !== undefined) return describe(kind, a.preference);
        if (a.rating !== undefined) return 'rated ' + a.rating;
        if (a.ranking !== undefined) return describe(kind, a.ranking);
        return JSON.stringify(a);
    }

    async function answer(fields, flashIdx) {
        const q = S.query;
        if (!q || S.busy) return;
        S.busy = true;
        const main = $('#work');
        main.dataset.state = 'saving';
        if (flashIdx !== undefined) for (const i of [].concat(flashIdx)) S.clips[i] && S.clips[i].card.classList.add('chosen');
        const now = Date.now();
        const item = {
            token: RLHF.token(),
            body: Object.assign({
                query_id: q.id,
                idempotency_id: RLHF.uuid(),
                shown_at_ms: S.shownAt,
                time_spent_ms: now - S.shownAt,
            }, fields),
        };
        outboxAdd(item);
        setSaveState('saving', 'saving…');
        const epoch = S.epoch;
        try {
            const r = await deliver(item);
            if (epoch !== S.epoch) return;
            banner('');
            S.session.push((now - S.shownAt) / 1000);
            S.myLabels += 1;   // "duplicate": an earlier attempt was stored; either way it counts once
            setStats({});
            setSaveState('saved', 'saved ✓', r.label_id);
            S.lastSaved = r.label_id;
            S.busy = false;
            S.query = null;
            refreshRecent();
            await loadNext();
        } catch (e) {
            if (epoch !== S.epoch) return;
            S.busy = false;
            if (e instanceof AuthError) return signedOut(e.message);
            setSaveState('error', 'not saved');
            banner('The coordinator refused this answer: ' + e.message);
            main.dataset.state = 'ready';
            for (const c of S.clips) c.card.classList.remove('chosen');
            // An unknown or finished query: nothing to do with it any more.
            if (e instanceof HttpError && (e.status === 404 || e.status === 409 || e.status === 410)) {
                S.query = null;
                await loadNext();
            }
        }
    }

    async function skip() {
        const q = S.query;
        if (!q || S.busy) return;
        S.busy = true;
        try {
            await api('POST', '/api/skip', { query_id: q.id });
            toast('Skipped; it goes to someone else.');
            S.busy = false;
            S.query = null;
            await loadNext();
        } catch (e) {
            S.busy = false;
            if (e instanceof AuthError) return signedOut(e.message);
            toast('Could not skip: ' + e.message, 'error');
        }
    }

    async function undo(labelId) {
        if (S.busy) return toast('Wait until the answer is saved.', 'warn');
        // U undoes the answer saved last on this page (the recent list may
        // not have caught up with it yet), else the newest undoable one.
        if (!labelId && S.lastSaved) labelId = S.lastSaved;
        if (!labelId) {
            const u = S.recent.find((r) => r.undoable);
            if (!u) return toast('Nothing to undo: answers can be undone only for a few seconds.', 'warn');
            labelId = u.label_id;
        }
        S.busy = true;
        try {
            const r = await api('POST', '/api/undo', { label_id: labelId });
            S.busy = false;
            if (S.lastSaved === labelId) S.lastSaved = null;
            S.session.pop();
            S.myLabels = Math.max(0, S.myLabels - 1);
            setStats({});
            setSaveState('undone', 'undone ↶', labelId);
            toast('Undone. The query comes back to you.');
            refreshRecent();
            // The undone query is leased to us again: show it now if the
            // coordinator offers it; otherwise it follows the one on screen.
            S.query = null;
            await loadNext(r.query_id);
        } catch (e) {
            S.busy = false;
            if (S.lastSaved === labelId) S.lastSaved = null;
            if (e instanceof AuthError) return signedOut(e.message);
            toast(e instanceof HttpError && e.status === 409 ? 'Too late to undo: ' + e.message : 'Could not undo: ' + e.message, 'error');
            refreshRecent();
        }
    }

    // ---- recent answers --------------------------------------------------

    let recentTimer = 0;
    async function refreshRecent() {
        clearTimeout(recentTimer);
        const epoch = S.epoch;
        try {
            const r = await api('GET', '/api/recent');
            if (epoch !== S.epoch) return;
            S.recent = Array.isArray(r.labels) ? r.labels : [];
            renderRecent();
        } catch (e) {
            if (e instanceof AuthError) return signedOut(e.message);
        }
        if (epoch !== S.epoch) return;
        // Undo buttons disappear when the window closes: look again soon
        // while one is shown.
        recentTimer = setTimeout(refreshRecent, S.recent.some((x) => x.undoable) ? 1500 : 15000);
    }

    function renderRecent() {
        const list = $('#recent');
        if (!list) return;
        if (!S.recent.length) {
            list.replaceChildren(el('li', { class: 'muted empty' }, 'Your answers will appear here.'));
        } else {
            list.replaceChildren(...S.recent.map((r) => el('li', {
                class: 'recent-item',
                'data-label-id': r.label_id,
                'data-query-id': r.query_id,
                'data-undoable': r.undoable ? 'true' : 'false',
            },
            el('span', { class: 'recent-answer' }, describe(r.kind, r.answer)),
            el('span', { class: 'recent-meta muted', title: 'query ' + r.query_id },
                (r.kind || '') + ' #' + shortId(r.query_id) + ' · ' + (r.at_ms ? RLHF.ago(r.at_ms) : '')),
            r.undoable
                ? el('button', { type: 'button', class: 'small', onclick: () => undo(r.label_id), title: 'Undo (U)' }, 'Undo')
                : el('span', { class: 'badge ok', title: 'stored by the coordinator' }, 'saved'))));
        }
        const times = S.session.slice().sort((a, b) => a - b);
        const med = times.length ? times[Math.floor(times.length / 2)] : 0;
        $('#session').textContent = S.session.length
            ? S.session.length + ' answered this session · median ' + med.toFixed(1) + ' s each'
            : 'No answers yet this session.';
    }

    // ---- queries ---------------------------------------------------------

    let nextTimer = 0;
    let loading = false;

    // Asks for the next query; shows it, or the waiting view (polling).
    // wantId: after an undo, the query we expect back (a hint only).
    async function loadNext(wantId) {
        clearTimeout(nextTimer);
        if (loading) return;
        loading = true;
        const epoch = S.epoch;
        let data;
        for (let attempt = 1; ; attempt++) {
            try {
                data = await api('GET', '/api/next');
                break;
            } catch (e) {
                if (epoch !== S.epoch) return void (loading = false);
                if (e instanceof AuthError) {
                    loading = false;
                    return signedOut(e.message);
                }
                showWaiting('Cannot get the next query: ' + e.message + '. Trying again…');
                await sleep(Math.min(1000 * attempt, 5000));
                if (epoch !== S.epoch) return void (loading = false);
            }
        }
        loading = false;
        if (epoch !== S.epoch) return;
        banner('');
        setStats(data);
        if (!data.query) {
            S.query = null;
            showWaiting();
            nextTimer = setTimeout(loadNext, POLL_EMPTY_MS);
            return;
        }
        if (S.query && S.query.id === data.query.id) return;   // already on screen
        showQuery(data.query);
        if (wantId && data.query.id !== wantId) toast('The undone query follows this one.');
    }

    function showWaiting(why) {
        S.query = null;
        S.clips = [];
        const work = $('#work');
        work.dataset.state = 'waiting';
        delete work.dataset.queryId;
        work.replaceChildren(el('div', { class: 'waiting card' },
            el('div', { class: 'pulse', 'aria-hidden': 'true' }),
            el('h2', {}, why ? 'Reconnecting' : 'Nothing to label right now'),
            el('p', { class: 'muted' }, why ||
                'The learner asks for more as it trains. This page checks every few seconds; the next query appears by itself.')));
    }

    function kindName(q) {
        return q.kind === 'pair' ? 'Which is better?' : q.kind === 'rating' ? 'How good is this?' : 'Rank these, best first';
    }

    function clipTitle(q, i) {
        if (q.kind === 'pair') return i === 0 ? ['Left', '←'] : ['Right', '→'];
        if (q.kind === 'rating') return ['Clip', ''];
        return ['Clip ' + (i + 1), String(i + 1)];
    }

    function showQuery(q) {
        S.query = q;
        S.shownAt = Date.now();
        S.ranking = [];
        const segs = Array.isArray(q.segments) ? q.segments : [];
        const renderer = window.RLHF_RENDER[q.render_kind];
        const work = $('#work');
        work.dataset.state = 'ready';
        work.dataset.queryId = q.id;
        work.dataset.kind = q.kind;
        const p = S.player;
        p.len = Math.max(1, ...segs.map((s) => (s.render_states || []).length));
        p.fps = q.fps > 0 ? q.fps : 30;
        p.hold = Math.round(p.fps * 0.4);   // a short rest on the last frame before looping
        p.pos = 0;
        p.drawn = -1;

        const missing = typeof renderer !== 'function';
        const aspect = (!missing && renderer.aspect) || 0.75;
        S.clips = segs.map((seg, i) => {
            const [title, key] = clipTitle(q, i);
            const canvas = el('canvas', { class: 'clip-canvas', 'data-index': i, role: 'img', 'aria-label': title + ' clip' });
            canvas.style.aspectRatio = String(1 / aspect);
            const badge = el('span', { class: 'rank-badge', hidden: true });
            const card = el('figure', { class: 'clip', 'data-index': i },
                el('figcaption', {}, el('span', {}, title), key ? el('kbd', {}, key) : null, badge),
                canvas);
            if (q.kind === 'ranking') card.addEventListener('click', () => pickRank(i));
            return { canvas, card, seg, badge, failed: null };
        });

        const clips = el('div', { class: 'clips k' + segs.length });
        clips.append(...S.clips.map((c) => c.card));
        const head = el('div', { class: 'query-head' },
            el('h2', {}, kindName(q)),
            el('span', { class: 'muted', title: 'query ' + q.id }, (q.env_id || q.render_kind) + ' · query #' + shortId(q.id) + ' · ' + p.len + ' steps'));
        const notice = missing
            ? el('p', { class: 'notice', id: 'renderer-missing' },
                "This page has no drawing for render kind '" + q.render_kind + "'" +
                (String(q.render_kind).startsWith('mujoco2d:') ? ' (render_mujoco.js did not load)' : '') +
                ". You can still skip it or answer \"can't tell\".")
            : null;
        work.replaceChildren(head, notice || '', clips, playerBar(), answerBar(q));
        updatePlayer();
        updateRanking();
        draw(true);
    }

    // ---- the player ------------------------------------------------------

    function playerBar() {
        const p = S.player;
        const play = el('button', { type: 'button', id: 'play', class: 'icon', title: 'Play / pause (P)', onclick: togglePlay });
        const scrub = el('input', { type: 'range', id: 'scrub', min: 0, max: Math.max(0, p.len - 1), step: 1, value: 0, 'aria-label': 'Frame' });
        // Once let go, the keys belong to the page again: an arrow key then
        // answers, as everywhere else, instead of moving the slider.
        scrub.addEventListener('change', () => scrub.blur());
        scrub.addEventListener('input', () => {
            p.playing = false;
            p.pos = Number(scrub.value);
            updatePlayer();
            draw(true);
        });
        const speeds = el('div', { class: 'speeds', role: 'group', 'aria-label': 'Speed' },
            ...SPEEDS.map((s) => el('button', { type: 'button', class: 'speed', 'data-speed': s, onclick: () => setSpeed(s) }, s + '×')));
        return el('div', { class: 'player' }, play, scrub, el('span', { id: 'frame', class: 'frame muted' }), speeds);
    }

    function togglePlay() {
        S.player.playing = !S.player.playing;
        if (S.player.pos >= S.player.len - 1 && S.player.playing) S.player.pos = 0;
        S.player.last = 0;
        updatePlayer();
    }

    function setSpeed(s) {
        S.player.speed = s;
        updatePlayer();
    }

    function step(d) {
        const p = S.player;
        p.playing = false;
        p.pos = (Math.min(Math.floor(p.pos), p.len - 1) + d + p.len) % p.len;
        updatePlayer();
        draw(true);
    }

    function frameIndex() {
        return Math.min(Math.floor(S.player.pos), S.player.len - 1);
    }

    function updatePlayer() {
        const p = S.player, f = frameIndex();
        const play = $('#play');
        if (!play) return;
        play.textContent = p.playing ? '❚❚' : '▶';
        play.setAttribute('aria-label', p.playing ? 'Pause' : 'Play');
        $('#scrub').value = f;
        $('#frame').textContent = 'step ' + (f + 1) + ' / ' + p.len;
        for (const b of document.querySelectorAll('.speed')) b.classList.toggle('on', Number(b.dataset.speed) === p.speed);
    }

    function drawMessage(ctx, w, h, lines, color) {
        ctx.fillStyle = color;
        ctx.font = '15px system-ui, sans-serif';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        lines.forEach((t, i) => ctx.fillText(t, w / 2, h / 2 + (i - (lines.length - 1) / 2) * 22, w - 20));
    }

    // Draws every clip at the shared frame (a shorter clip holds its last).
    function draw(force) {
        const q = S.query;
        if (!q) return;
        const f = frameIndex();
        if (!force && f === S.player.drawn) return;
        S.player.drawn = f;
        const renderer = window.RLHF_RENDER[q.render_kind];
        const theme = RLHF_RENDER_THEME();
        const dpr = window.devicePixelRatio || 1;
        for (const c of S.clips) {
            const w = c.canvas.clientWidth, h = c.canvas.clientHeight;
            if (!w || !h) continue;
            const W = Math.round(w * dpr), H = Math.round(h * dpr);
            if (c.canvas.width !== W || c.canvas.height !== H) {
                c.canvas.width = W;
                c.canvas.height = H;
            }
            const ctx = c.canvas.getContext('2d');
            ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
            ctx.fillStyle = theme.bg;
            ctx.fillRect(0, 0, w, h);
            const states = c.seg.render_states || [];
            if (typeof renderer !== 'function') {
                drawMessage(ctx, w, h, ['No renderer for', "'" + q.render_kind + "'"], theme.muted);
                continue;
            }
            if (c.failed) {
                drawMessage(ctx, w, h, ['Cannot draw this clip:', c.failed], theme.warn);
                continue;
            }
            if (!states.length) {
                drawMessage(ctx, w, h, ['This clip has no frames'], theme.muted);
                continue;
            }
            const i = Math.min(f, states.length - 1);
            ctx.save();
            try {
                renderer(ctx, states[i], w, h, { env_id: q.env_id, step: i, length: states.length, theme });
            } catch (e) {
                // A renderer bug must not take the page down: say so on the clip.
                c.failed = String(e && e.message ? e.message : e).slice(0, 120);
                console.warn('renderer ' + q.render_kind + ' failed:', e);
            }
            ctx.restore();
            if (c.failed) {
                ctx.fillStyle = theme.bg;
                ctx.fillRect(0, 0, w, h);
                drawMessage(ctx, w, h, ['Cannot draw this clip:', c.failed], theme.warn);
            }
            // Progress along the bottom edge.
            ctx.fillStyle = theme.accent;
            ctx.globalAlpha = 0.55;
            ctx.fillRect(0, h - 3, (w * (i + 1)) / states.length, 3);
            ctx.globalAlpha = 1;
        }
    }

    function tick(ts) {
        const p = S.player;
        if (S.query && p.playing) {
            if (p.last) {
                const dt = Math.min(0.25, (ts - p.last) / 1000);
                p.pos += dt * p.fps * p.speed;
                if (p.pos >= p.len + p.hold) p.pos = 0;
            }
            p.last = ts;
            const before = p.drawn;
            draw(false);
            if (p.drawn !== before) updatePlayer();
        } else {
            p.last = 0;
        }
        requestAnimationFrame(tick);
    }

    // ---- answer controls -------------------------------------------------

    function answerBar(q) {
        const btn = (text, key, onclick, cls) =>
            el('button', { type: 'button', class: 'answer ' + (cls || ''), onclick }, el('span', {}, text), key ? el('kbd', {}, key) : null);
        const skipBtn = el('button', { type: 'button', class: 'link', onclick: skip, title: 'Skip (S)' }, 'Skip');
        if (q.kind === 'pair') {
            return el('div', { class: 'answers pair' },
                btn('Left is better', '←', () => answer({ preference: 'left' }, 0), 'primary'),
                btn('Equally good', '↓', () => answer({ preference: 'equal' }, [0, 1])),
                btn("Can't tell", 'Space', () => answer({ preference: 'cant_tell' })),
                btn('Right is better', '→', () => answer({ preference: 'right' }, 1), 'primary'),
                skipBtn);
        }
        if (q.kind === 'rating') {
            return el('div', { class: 'answers rating' },
                ...[1, 2, 3, 4, 5, 6, 7].map((n) => el('button', {
                    type: 'button', class: 'answer rate r' + n, title: RATING_WORDS[n], onclick: () => answer({ rating: n }, 0),
                }, el('b', {}, String(n)), el('small', {}, RATING_WORDS[n]))),
                btn("Can't tell", 'Space', () => answer({ cant_tell: true })),
                skipBtn);
        }
        return el('div', { class: 'answers ranking' },
            el('div', { class: 'order', id: 'order', 'aria-live': 'polite' }),
            btn('Take back', '⌫', unpickRank),
            btn('Submit order', 'Enter', submitRank, 'primary'),
            btn("Can't tell", 'Space', () => answer({ cant_tell: true })),
            skipBtn);
    }

    function pickRank(i) {
        const q = S.query;
        if (!q || q.kind !== 'ranking' || S.busy || i >= S.clips.length || S.ranking.includes(i)) return;
        S.ranking.push(i);
        // The last one left is last: no need to press it.
        if (S.ranking.length === S.clips.length - 1) {
            for (let j = 0; j < S.clips.length; j++) if (!S.ranking.includes(j)) S.ranking.push(j);
        }
        updateRanking();
    }

    function unpickRank() {
        if (S.ranking.length === S.clips.length) S.ranking.pop();   // the automatic last
        S.ranking.pop();
        updateRanking();
    }

    function submitRank() {
        if (S.ranking.length !== S.clips.length) return toast('Pick the clips in order first (keys 1–' + S.clips.length + ').', 'warn');
        answer({ ranking: S.ranking.slice() }, S.ranking[0]);
    }

    function updateRanking() {
        const q = S.query;
        if (!q || q.kind !== 'ranking') return;
        S.clips.forEach((c, i) => {
            const r = S.ranking.indexOf(i);
            c.badge.hidden = r < 0;
            c.badge.textContent = r < 0 ? '' : ordinal(r + 1);
            c.card.classList.toggle('picked', r >= 0);
        });
        const order = $('#order');
        order.replaceChildren(S.ranking.length
            ? el('span', {}, 'Best first: ', el('b', {}, S.ranking.map((i) => i + 1).join(' › ')))
            : el('span', { class: 'muted' }, 'Press 1–' + S.clips.length + ' (or click the clips) from best to worst'));
    }

    function ordinal(n) {
        return n + (n === 1 ? 'st' : n === 2 ? 'nd' : n === 3 ? 'rd' : 'th');
    }

    // ---- keyboard --------------------------------------------------------

    function onKey(e) {
        if (e.ctrlKey || e.metaKey || e.altKey) return;
        const t = e.target;
        if (t && (t.tagName === 'INPUT' && t.type !== 'range' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
        if ($('#help').open) return;
        const q = S.query;
        const k = e.key;
        let handled = true;
        if (k === '?') $('#help').showModal();
        else if (k === 'p' || k === 'P') togglePlay();
        else if (k === ',') step(-1);
        else if (k === '.') step(1);
        else if (k === '[') setSpeed(SPEEDS[Math.max(0, SPEEDS.indexOf(S.player.speed) - 1)]);
        else if (k === ']') setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS.indexOf(S.player.speed) + 1)]);
        else if (k === 'u' || k === 'U') undo();
        else if (!q) handled = false;
        else if (e.repeat && (k.startsWith('Arrow') || k === ' ' || /^[1-9]$/.test(k) || k === 'Enter')) {
            /* a held key answers once */
        } else if (k === 's' || k === 'S') skip();
        else if (k === ' ') answer(q.kind === 'pair' ? { preference: 'cant_tell' } : { cant_tell: true });
        else if (q.kind === 'pair' && k === 'ArrowLeft') answer({ preference: 'left' }, 0);
        else if (q.kind === 'pair' && k === 'ArrowRight') answer({ preference: 'right' }, 1);
        else if (q.kind === 'pair' && k === 'ArrowDown') answer({ preference: 'equal' }, [0, 1]);
        else if (q.kind === 'rating' && /^[1-7]$/.test(k)) answer({ rating: Number(k) }, 0);
        else if (q.kind === 'ranking' && /^[1-9]$/.test(k)) pickRank(Number(k) - 1);
        else if (q.kind === 'ranking' && k === 'Backspace') unpickRank();
        else if (q.kind === 'ranking' && k === 'Escape') {
            S.ranking = [];
            updateRanking();
        } else if (q.kind === 'ranking' && k === 'Enter') submitRank();
        else handled = false;
        if (handled) e.preventDefault();
    }

    // ---- sign-in and start -----------------------------------------------

    function layout() {
        const main = $('#main');
        main.className = 'layout';
        main.replaceChildren(
            el('section', { id: 'work', class: 'work', 'data-state': 'loading' }, el('p', { class: 'muted' }, 'Loading…')),
            el('aside', { class: 'side' },
                el('div', { class: 'card' },
                    el('h3', {}, 'My recent answers'),
                    el('p', { id: 'session', class: 'muted small' }),
                    el('ol', { id: 'recent', class: 'recent' })),
                el('div', { class: 'card tips' },
                    el('h3', {}, 'Shortcuts'),
                    el('p', { class: 'small' }, el('kbd', {}, '←'), ' ', el('kbd', {}, '→'), ' better  ',
                        el('kbd', {}, '↓'), ' equal  ', el('kbd', {}, 'Space'), " can't tell"),
                    el('p', { class: 'small' }, el('kbd', {}, '1'), '–', el('kbd', {}, '7'), ' rate  ',
                        el('kbd', {}, 'U'), ' undo  ', el('kbd', {}, 'P'), ' pause  ', el('kbd', {}, '?'), ' all'))));
        renderRecent();
    }

    function signedOut(message) {
        S.epoch++;
        clearTimers();
        clearTimeout(nextTimer);
        clearTimeout(recentTimer);
        S.query = null;
        S.busy = false;
        S.clips = [];
        RLHF.setToken('');
        $('#stats').hidden = true;
        $('#logout').hidden = true;
        banner('');
        start(message);
    }

    async function start(message) {
        const main = $('#main');
        if (!RLHF.token()) {
            main.className = 'layout single';
            await RLHF.login(main, (t) => api('GET', '/api/recent', undefined, t), message);
        }
        const epoch = S.epoch;
        $('#logout').hidden = false;
        layout();
        try {
            await flushOutbox(RLHF.token());
        } catch (e) {
            if (e instanceof AuthError) return signedOut(e.message);
        }
        if (epoch !== S.epoch) return;
        refreshRecent();
        loadNext();
    }

    document.addEventListener('keydown', onKey);
    // A clicked button must not keep the focus: Space or Enter would then
    // press it again (on the next query) besides meaning what they mean here.
    document.addEventListener('click', (e) => {
        const b = e.target.closest && e.target.closest('button');
        if (b && !b.closest('form, dialog')) b.blur();
    });
    $('#logout').addEventListener('click', () => signedOut(''));
    $('#help-button').addEventListener('click', () => $('#help').showModal());
    window.addEventListener('resize', () => draw(true));
    if (window.matchMedia) window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => draw(true));
    requestAnimationFrame(tick);
    start('');
})();
