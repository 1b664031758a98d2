// label.mjs URL TOKEN [N] - a person at the labeling page, played by Debian's
// headless Chromium through playwright-core. Run by tests/test_browser.c
// against a live `rlhf run --feedback human`; exits 0 only when everything
// below held, 1 (saying what failed) otherwise.
//
//  1. A wrong token is refused at the login form (401 -> a message); the
//     right one signs in.
//  2. The first query shows exactly two segments side by side, both drawn
//     (more than a background colour) and both animated: each canvas's
//     pixels change over time while playing, and stay still when paused
//     (P); the frame keys (, .) move the shared frame.
//  3. N queries (default 20) are answered with the arrow keys. After each,
//     the page must say "saved" with a new label id before the next query
//     is answered. The third answer is undone with U; its query must come
//     back and be answered again, so N labels stand at the end. Halfway,
//     the answers so far must be listed as saved with their label ids once
//     their undo window has closed (the run cannot end before it has all N
//     labels, so the page is still served then).
//     The status page then counts them and lists the labeler.
//  4. Right after the last answer (inside its undo window, so before the
//     learner can take it and end the run): "my labels" shows N and the
//     recent list holds all N answers with their label ids.
// Last line on stdout: {"labels": N, "undone": QUERY, "queries": [...],
// "label_ids": [...]} (the standing answers), for the caller to check the
// run's store against.
//
// Environment: RLHF_TIMEOUT_SCALE multiplies every wait (the sanitizer
// build is several times slower); RLHF_BROWSER_ARTIFACTS names a folder for
// a screenshot and the page's HTML when something fails.
import { launch } from './chromium.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, token, nArg] = process.argv.slice(2);
if (!url || !token) {
    console.error('usage: node tests/browser/label.mjs URL TOKEN [N]');
    process.exit(2);
}
const N = nArg ? Number(nArg) : 20;
const SCALE = Number(process.env.RLHF_TIMEOUT_SCALE || 1) || 1;
const ARTIFACTS = process.env.RLHF_BROWSER_ARTIFACTS || '';
const T = (ms) => Math.round(ms * SCALE);
const t0 = Date.now();
const log = (...a) => console.log(`[label.mjs ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

class Failure extends Error {}
function check(cond, msg) {
    if (!cond) throw new Failure(msg);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-chromium-'));
let context = null, page = null;
const pageErrors = [];
const finalLabels = new Map();   // query id -> label id of its standing answer

// The whole script is bounded too: a hang is a failure, not a stuck test.
const watchdog = setTimeout(() => fail(new Failure('gave up after ' + T(600000) / 1000 + ' s')), T(600000));

async function fail(e) {
    console.error('label.mjs: FAILED: ' + (e instanceof Failure ? e.message : e && e.stack ? e.stack : e));
    if (pageErrors.length) console.error('page errors:\n  ' + pageErrors.join('\n  '));
    if (page && ARTIFACTS) {
        try {
            fs.mkdirSync(ARTIFACTS, { recursive: true });
            await page.screenshot({ path: path.join(ARTIFACTS, 'label-failure.png') });
            fs.writeFileSync(path.join(ARTIFACTS, 'label-failure.html'), await page.content());
            console.error('label.mjs: screenshot and HTML in ' + ARTIFACTS);
        } catch (err) { /* the page may be gone */ }
    }
    await cleanup();
    process.exit(1);
}

async function cleanup() {
    clearTimeout(watchdog);
    if (context) await context.close().catch(() => {});
    context = null;
    // Chromium may still be writing its profile as it goes: retry.
    try {
        fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    } catch (e) {
        console.error('label.mjs: cannot remove ' + profile + ': ' + e.message);
    }
}

// Waits until fn() (run in the test, may be async) returns a truthy value.
async function until(what, fn, ms) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Failure('timed out after ' + (ms / 1000).toFixed(0) + ' s waiting for ' + what);
        await new Promise((r) => setTimeout(r, 100));
    }
}

// The recent list shows each of queries with its standing label id; with
// saved, each past its undo window (the "saved" badge, no Undo button).
// Returns the list, or null.
async function recentHas(queries, saved) {
    const items = await page.evaluate(() => Array.from(document.querySelectorAll('.recent-item'), (li) => ({
        query: li.dataset.queryId, label: li.dataset.labelId, undoable: li.dataset.undoable === 'true',
        saved: !!li.querySelector('.badge.ok'),
    })));
    const ok = queries.every((q) => items.some((i) => i.query === q && i.label === finalLabels.get(q) &&
        (!saved || (i.saved && !i.undoable))));
    return ok ? items : null;
}

// The status page, meanwhile (same browser, so the token is known): the
// tiles count at least `labels` labels and a live learner, the labeler is
// listed with them, and the three charts are drawn.
async function checkStatusPage(labels) {
    const st = await context.newPage();
    st.on('pageerror', (e) => pageErrors.push('status page: ' + e.message));
    await st.goto(new URL('/status', url).href);
    await st.waitForSelector('#tile-labels .value', { timeout: T(15000) });
    const s = await until('the status page to count ' + labels + ' labels', async () => {
        const x = await st.evaluate(() => ({
            labels: Number(document.querySelector('#tile-labels .value').textContent),
            learner: Number(document.querySelector('#tile-learner .value').textContent),
            charts: document.querySelectorAll('.chart svg').length,
            labelers: Array.from(document.querySelectorAll('table.labelers tbody tr'), (tr) => tr.firstChild.textContent),
        }));
        return x.labels >= labels ? x : null;
    }, T(15000));
    const me = await page.textContent('#labeler');
    check(s.learner === 1, 'the status page shows ' + s.learner + ' learners alive');
    check(s.charts === 3, 'the status page draws ' + s.charts + ' charts, expected 3');
    check(s.labelers.includes(me), 'the status page does not list labeler ' + me + ' (' + s.labelers.join(', ') + ')');
    await st.close();
    await page.bringToFront();
    log('the status page counts ' + s.labels + ' labels and lists ' + me);
}

// What the page shows right now.
function view() {
    return page.evaluate(() => {
        const w = document.querySelector('#work');
        const s = document.querySelector('#save-state');
        return {
            state: w ? w.dataset.state : null,
            queryId: w ? w.dataset.queryId || null : null,
            kind: w ? w.dataset.kind || null : null,
            save: s ? s.dataset.state : null,
            labelId: s ? s.dataset.labelId || null : null,
            myLabels: Number((document.querySelector('#my-labels') || {}).textContent),
            banner: (document.querySelector('#banner') || {}).textContent || '',
        };
    });
}

// Per canvas: a fingerprint of its pixels and how many distinct colours it has.
function canvases() {
    return page.evaluate(() => Array.from(document.querySelectorAll('canvas.clip-canvas'), (c) => {
        const ctx = c.getContext('2d');
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let h = 2166136261 >>> 0;
        const colours = new Set();
        for (let i = 0; i < d.length; i += 4) {
            const px = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
            h = Math.imul(h ^ px, 16777619) >>> 0;
            if (colours.size < 64) colours.add(px);
        }
        const r = c.getBoundingClientRect();
        return { hash: h, colours: colours.size, w: c.width, h: c.height, left: r.left, top: r.top, visible: r.width > 50 && r.height > 50 };
    }));
}

async function main() {
    context = await launch(profile, { viewport: { width: 1280, height: 860 } });
    page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
        if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) log('console error:', m.text());
    });
    page.setDefaultTimeout(T(30000));

    // 1. Sign in: a wrong token first.
    await page.goto(url);
    await page.waitForSelector('#token');
    await page.fill('#token', 'f'.repeat(64));
    await page.click('#login-button');
    await until('the refusal of a wrong token', async () => /not accepted/.test(await page.textContent('#login-message')), T(15000));
    await page.fill('#token', token);
    await page.click('#login-button');
    await page.waitForSelector('#work', { timeout: T(15000) });
    const stored = await page.evaluate(() => localStorage.getItem('rlhf.token'));
    check(stored === token, 'the token was not kept in localStorage');
    log('signed in as', await page.textContent('#labeler').catch(() => '?'));

    // 2. The first query: two segments, drawn and animated.
    let v = await until('the first query', async () => {
        const x = await view();
        return x.state === 'ready' ? x : null;
    }, T(180000));
    check(v.kind === 'pair', 'the first query is a ' + v.kind + ', the job asks for pairs');
    let c = await canvases();
    check(c.length === 2, 'expected 2 segments on the page, found ' + c.length);
    check(c.every((x) => x.visible && x.w > 0 && x.h > 0), 'a segment canvas is not visible: ' + JSON.stringify(c));
    check(c[0].top === c[1].top && c[0].left < c[1].left, 'the two segments are not side by side');
    const frames = Number(await page.getAttribute('#scrub', 'max')) + 1;
    check(frames >= 2, 'the segments have ' + frames + ' frame(s), not an animation');
    const first = c.map((x) => x.hash);
    const changed = [false, false];
    await until('both segments to animate', async () => {
        const now = await canvases();
        now.forEach((x, i) => {
            if (x.hash !== first[i]) changed[i] = true;
            check(x.colours > 2, 'segment ' + i + ' is blank (' + x.colours + ' colours)');
        });
        return changed[0] && changed[1];
    }, T(10000));
    await page.keyboard.press('p');   // pause: the pictures hold still
    await page.waitForTimeout(100);
    const paused = (await canvases()).map((x) => x.hash);
    await page.waitForTimeout(400);
    check((await canvases()).every((x, i) => x.hash === paused[i]), 'the segments still move while paused');
    const f0 = await page.inputValue('#scrub');
    await page.keyboard.press('.');
    const f1 = await page.inputValue('#scrub');
    check(Number(f1) === (Number(f0) + 1) % frames, 'the . key did not step one frame (' + f0 + ' -> ' + f1 + ')');
    await page.keyboard.press('p');   // play again
    log('two segments shown and animated (' + frames + ' frames each)');

    // 3. N answers with the keyboard, one undone and given again; halfway,
    // a pause until the first answers' undo window has closed.
    const final = finalLabels;
    let undone = null, undoneBack = false, presses = 0, lastLabel = null, paused_ = false;
    while (final.size < N) {
        v = await until('a query to answer (' + final.size + ' of ' + N + ' answered)', async () => {
            const x = await view();
            return x.state === 'ready' && x.queryId && !final.has(x.queryId) ? x : null;
        }, T(120000));
        check(v.kind === 'pair', 'query ' + v.queryId + ' is a ' + v.kind);
        check((await page.locator('canvas.clip-canvas').count()) === 2, 'query ' + v.queryId + ' does not show 2 segments');
        if (undone && v.queryId === undone) undoneBack = true;
        await page.keyboard.press(presses % 2 ? 'ArrowRight' : 'ArrowLeft');
        presses++;
        const saved = await until('"saved" for query ' + v.queryId, async () => {
            const x = await view();
            if (x.save === 'error') throw new Failure('the page could not save the answer to query ' + v.queryId + ': ' + x.banner);
            return x.save === 'saved' && x.labelId && x.labelId !== lastLabel ? x : null;
        }, T(30000));
        lastLabel = saved.labelId;
        final.set(v.queryId, saved.labelId);
        if (final.size === 3 && !undone) {
            // Undo it right away (inside the coordinator's undo window).
            await page.keyboard.press('u');
            await until('"undone" for query ' + v.queryId, async () => (await view()).save === 'undone', T(10000));
            final.delete(v.queryId);
            undone = v.queryId;
            log('undid the answer to query', undone);
        }
        if (final.size === Math.floor(N / 2) && !paused_) {
            // The learner cannot finish before it has all N, so the page
            // is sure to be served while these windows close.
            paused_ = true;
            const first = Array.from(final.keys());
            await until('the first ' + first.length + ' answers listed as saved (undo window over)',
                async () => recentHas(first, true), T(60000));
            log('the first ' + first.length + ' answers are listed as saved, past their undo window');
            await checkStatusPage(first.length);
        }
    }
    check(undone && undoneBack, 'the undone query ' + undone + ' did not come back to be answered again');
    log(N + ' answers saved (' + presses + ' key presses, one undone and redone)');

    // 4. The page's own account of them, while the run still has them on
    // hold for their undo window.
    await until('"my labels" to show ' + N, async () => (await view()).myLabels === N, T(10000));
    const all = Array.from(final.keys());
    const recent = await until('all ' + N + ' answers in the recent list', async () => recentHas(all, false), T(10000));
    check(pageErrors.length === 0, 'the page threw: ' + pageErrors.join('; '));
    log('the page shows ' + N + ' labels and lists all ' + recent.length + ' answers');
    console.log(JSON.stringify({ labels: N, undone, queries: Array.from(final.keys()), label_ids: Array.from(final.values()) }));
    await cleanup();
    process.exit(0);
}

main().catch(fail);
