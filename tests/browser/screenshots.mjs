// screenshots.mjs BUILD OUT_DIR - takes OUT_DIR/labeling.png and
// OUT_DIR/status.png from a live run (`make screenshots`).
//
// Starts `BUILD/bin/rlhf run jobs/cartpole.ini --feedback human` (undo
// window 1 s so labels reach the learner quickly), signs in with the token it
// prints and answers the queries in the browser with the arrow keys like a
// careful person would: the clip whose pole stays up and near the middle is
// better (judged from the same render states the page draws, read from
// /api/next). The labeling page is captured early, mid-animation with a few
// answers in the list; the status page once the run is well along, so the
// curves have something to show. Then the run finishes on its own.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch } from './chromium.mjs';

const [build, outDir] = process.argv.slice(2);
if (!build || !outDir) {
    console.error('usage: node tests/browser/screenshots.mjs BUILD OUT_DIR');
    process.exit(2);
}
const bin = path.resolve(build, 'bin/rlhf');
// Longer than jobs/cartpole.ini, so the learning curves have a shape by the
// time the status page is captured; fewer labels, so our labeler keeps up.
const TOTAL = 600000, LABELS = 120;
const log = (...a) => console.error('[screenshots]', ...a);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-screens-'));
const runDir = path.join(tmp, 'run');
let run = null, context = null;

async function finish(code, msg) {
    if (msg) console.error('screenshots.mjs: ' + msg);
    if (context) await context.close().catch(() => {});
    if (run && run.exitCode === null) {
        run.kill('SIGTERM');
        await new Promise((r) => run.once('exit', r));
    }
    fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    process.exit(code);
}
setTimeout(() => finish(1, 'gave up after 15 minutes'), 15 * 60 * 1000).unref();

// How good a CartPole clip looks: steps with the pole up and the cart on
// the track, then how upright and central it stays.
function score(states) {
    let s = 0;
    for (const [x, th] of states) {
        if (Math.abs(th) > 0.2095 || Math.abs(x) > 2.4) break;
        s += 1 + 0.5 * Math.cos(th * 7) - 0.1 * Math.abs(x);
    }
    return s;
}

// The pair query on the page (the one /api/next leases to us again), with
// the scores of its clips; null while none is shown.
async function shownQuery(page, api) {
    const state = await page.getAttribute('#work', 'data-state').catch(() => null);
    if (state !== 'ready') return null;
    const n = await api('/api/next').catch(() => null);
    const q = n && n.query;
    if (!q || q.kind !== 'pair' || (await page.getAttribute('#work', 'data-query-id')) !== q.id) return null;
    q.scores = q.segments.map((sg) => score(sg.render_states));
    return q;
}

async function main() {
    fs.mkdirSync(outDir, { recursive: true });
    run = spawn(bin, ['run', 'jobs/cartpole.ini', '--feedback', 'human', '--out', runDir, '--learners', '1',
        '--rollouts', '2', '--set', 'feedback.undo_s=1', '--set', 'feedback.labels=' + LABELS,
        '--set', 'run.total_steps=' + TOTAL],
    { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const { url, token } = await new Promise((resolve, reject) => {
        run.stdout.on('data', (d) => {
            out += d;
            const u = /labeling page: (http:\/\/\S+)/.exec(out), t = /\ntoken: ([0-9a-f]+)\n/.exec('\n' + out);
            if (u && t) resolve({ url: u[1], token: t[1] });
        });
        run.once('exit', (c) => reject(new Error('rlhf run exited (' + c + ') before printing the URL and token:\n' + out)));
    });
    run.stdout.resume();
    log('run at', url);
    const api = async (p) => (await fetch(new URL(p, url), { headers: { Authorization: 'Bearer ' + token } })).json();

    const profile = path.join(tmp, 'profile');
    context = await launch(profile, { viewport: { width: 1400, height: 820 }, colorScheme: 'light' });
    const page = context.pages()[0] || (await context.newPage());
    await page.goto(url);
    await page.fill('#token', token);
    await page.click('#login-button');

    let labeled = 0, shotLabeling = false, shotStatus = false;
    while (!shotStatus) {
        if (run.exitCode !== null) throw new Error('the run ended before the status page was captured');
        const s = await api('/api/stats').catch(() => null);
        const q = await shownQuery(page, api);
        if (s && !shotLabeling && labeled >= 8 && q && Math.abs(q.scores[0] - q.scores[1]) >= 3) {
            // Mid-animation, a few answers listed, two clips that differ.
            await page.waitForSelector('#work[data-state="ready"]', { timeout: 60000 });
            await page.waitForFunction(() => {   // mid-clip, where the two differ most
                const f = Number((document.querySelector('#scrub') || {}).value);
                return f >= 14 && f <= 18;
            }, null, { timeout: 10000 });
            await page.screenshot({ path: path.join(outDir, 'labeling.png') });
            shotLabeling = true;
            log('labeling.png');
        }
        if (s && s.env_steps >= 0.7 * TOTAL && labeled > 0) {
            // A page of its own (the labeling tab goes to the background).
            const stats = await context.newPage();
            await stats.goto(new URL('/status', url).href);
            await stats.waitForSelector('#chart-return svg', { timeout: 30000 });
            await stats.setViewportSize({ width: 1400, height: 1100 });
            await stats.waitForTimeout(3500);
            await stats.screenshot({ path: path.join(outDir, 'status.png'), fullPage: true });
            shotStatus = true;
            log('status.png at', s.env_steps, 'env steps');
            break;
        }
        if (!q) {
            await page.waitForTimeout(100);
            continue;
        }
        const [a, b] = q.scores;
        await page.keyboard.press(Math.abs(a - b) < 1 ? 'ArrowDown' : a > b ? 'ArrowLeft' : 'ArrowRight');
        await page.waitForFunction((id) => {
            const w = document.querySelector('#work');
            return !w || w.dataset.queryId !== id;
        }, q.id, { timeout: 60000 });
        labeled++;
    }
    await context.close();
    context = null;
    log('waiting for the run to finish');
    const code = run.exitCode !== null ? run.exitCode : await new Promise((r) => run.once('exit', r));
    if (code !== 0) throw new Error('rlhf run exited with status ' + code);
    await finish(0);
}

main().catch((e) => finish(1, e && e.stack ? e.stack : String(e)));
