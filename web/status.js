// status.js - the status page: what the run is doing, from GET /api/stats
// every few seconds. Tiles (workers alive, queue, labels per minute, env
// steps), the labelers with their agreement, and learning curves drawn as
// hand-written SVG (no chart library, nothing from the internet).
'use strict';

(function () {
    const { api, el, $, AuthError } = RLHF;
    const REFRESH_MS = 3000;
    const SVGNS = 'http://www.w3.org/2000/svg';
    const COLORS = { blue: '#3b7cf0', orange: '#e8793b', green: '#22a35f', purple: '#9a5ee8' };

    let timer = 0, lastOk = 0, epoch = 0;

    // ---- formatting --------------------------------------------------------

    function fmt(v, digits) {
        if (v === null || v === undefined || !Number.isFinite(Number(v))) return '–';
        v = Number(v);
        const a = Math.abs(v);
        if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
        if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
        if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
        if (digits !== undefined) return v.toFixed(digits);
        if (Number.isInteger(v)) return String(v);
        return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
    }

    function pct(v) {
        return v === null || v === undefined || !Number.isFinite(Number(v)) ? '–' : (100 * v).toFixed(0) + '%';
    }

    // ---- SVG line charts -----------------------------------------------------

    function svg(tag, attrs, ...children) {
        const e = document.createElementNS(SVGNS, tag);
        for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
        for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
        return e;
    }

    // About n "nice" ticks (1, 2, 5 x 10^k steps) covering [lo, hi].
    // integer: counts (labels, steps) get no fractional ticks.
    function ticks(lo, hi, n, integer) {
        if (!(hi > lo)) {
            const d = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
            lo -= d;
            hi += d;
        }
        const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
        let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
        if (integer) step = Math.max(1, Math.round(step));
        const t0 = Math.floor(lo / step) * step, t1 = Math.ceil(hi / step) * step;
        const out = [];
        for (let t = t0; t <= t1 + step / 2; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
        return out;
    }

    function extent(arrays) {
        let lo = Infinity, hi = -Infinity;
        for (const a of arrays) for (const v of a || []) if (v !== null && Number.isFinite(v)) {
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        return lo <= hi ? [lo, hi] : null;
    }

    // spec: {xs, xLabel, series: [{name, ys, color, right}], yLabel,
    // yRightLabel, yDomain, yRightDomain, yFormat}
    function lineChart(spec) {
        const W = 560, H = 280, hasRight = spec.series.some((s) => s.right);
        const m = { l: 58, r: hasRight ? 58 : 18, t: 14, b: 42 };
        const pw = W - m.l - m.r, ph = H - m.t - m.b;
        const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
        const xs = (spec.xs || []).map(Number);
        const xr = extent([xs]);
        const left = spec.series.filter((s) => !s.right), right = spec.series.filter((s) => s.right);
        const yl = spec.yDomain || extent(left.map((s) => s.ys));
        const yr = spec.yRightDomain || extent(right.map((s) => s.ys));
        const anyData = xr && (yl || yr) && spec.series.some((s) => (s.ys || []).some((v) => v !== null && Number.isFinite(v)));
        if (!anyData) {
            root.append(svg('rect', { x: m.l, y: m.t, width: pw, height: ph, fill: 'none', class: 'axis' }),
                svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
            return root;
        }
        const xt = ticks(xr[0], xr[1], 6, true);
        const X0 = xr[0], X1 = xr[1] > xr[0] ? xr[1] : xr[0] + 1;
        const sx = (x) => m.l + ((x - X0) / (X1 - X0)) * pw;
        const axisY = (dom) => {
            const t = ticks(dom[0], dom[1], 5, spec.yInteger);
            return { t, lo: t[0], hi: t[t.length - 1], f: (y) => m.t + ph - ((y - t[0]) / (t[t.length - 1] - t[0])) * ph };
        };
        const AL = yl ? axisY(yl) : null, AR = yr ? axisY(yr) : null;
        // Grid and axes.
        const g = svg('g');
        if (AL) for (const t of AL.t) {
            const y = AL.f(t);
            g.append(svg('line', { x1: m.l, x2: m.l + pw, y1: y, y2: y, class: 'gridline' }),
                svg('text', { x: m.l - 8, y: y + 4, 'text-anchor': 'end' }, (spec.yFormat || fmt)(t)));
        }
        if (AR) for (const t of AR.t) {
            g.append(svg('text', { x: m.l + pw + 8, y: AR.f(t) + 4, 'text-anchor': 'start' }, (spec.yFormat || fmt)(t)));
        }
        for (const t of xt) {
            if (t < X0 - 1e-9 || t > X1 + 1e-9) continue;
            g.append(svg('line', { x1: sx(t), x2: sx(t), y1: m.t + ph, y2: m.t + ph + 5, class: 'axis' }),
                svg('text', { x: sx(t), y: m.t + ph + 18, 'text-anchor': 'middle' }, fmt(t)));
        }
        g.append(svg('line', { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, class: 'axis' }),
            svg('line', { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, class: 'axis' }),
            svg('text', { x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle' }, spec.xLabel));
        if (spec.yLabel) g.append(svg('text', { x: 14, y: m.t + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${m.t + ph / 2})` }, spec.yLabel));
        if (spec.yRightLabel && AR) g.append(svg('text', { x: W - 10, y: m.t + ph / 2, 'text-anchor': 'middle', transform: `rotate(90 ${W - 10} ${m.t + ph / 2})` }, spec.yRightLabel));
        root.append(g);
        // Series: nulls break the line.
        for (const s of spec.series) {
            const A = s.right ? AR : AL;
            if (!A) continue;
            let d = '', pen = false, lastPt = null;
            (s.ys || []).forEach((v, i) => {
                if (v === null || !Number.isFinite(v) || !Number.isFinite(xs[i])) {
                    pen = false;
                    return;
                }
                const px = sx(xs[i]).toFixed(1), py = A.f(v).toFixed(1);
                d += (pen ? 'L' : 'M') + px + ' ' + py;
                pen = true;
                lastPt = [px, py];
            });
            if (d) root.append(svg('path', { d, class: 'series', stroke: s.color, 'data-series': s.name }));
            if (lastPt) root.append(svg('circle', { cx: lastPt[0], cy: lastPt[1], r: 3.5, fill: s.color }));
        }
        // Hover: the values at the nearest x.
        const hover = svg('g', { visibility: 'hidden' });
        const vline = svg('line', { y1: m.t, y2: m.t + ph, class: 'hover-line' });
        const tip = svg('text', { y: m.t + 14 });
        hover.append(vline, tip);
        root.append(hover);
        const overlay = svg('rect', { x: m.l, y: m.t, width: pw, height: ph, fill: 'transparent' });
        overlay.addEventListener('mousemove', (ev) => {
            const box = root.getBoundingClientRect();
            const x = ((ev.clientX - box.left) / box.width) * W;
            let best = -1, bd = Infinity;
            xs.forEach((v, i) => {
                const dd = Math.abs(sx(v) - x);
                if (dd < bd) {
                    bd = dd;
                    best = i;
                }
            });
            if (best < 0) return;
            const px = sx(xs[best]);
            vline.setAttribute('x1', px);
            vline.setAttribute('x2', px);
            tip.replaceChildren(svg('tspan', { x: 0, dy: 0, 'font-weight': 600 }, spec.xLabel + ' ' + fmt(xs[best])),
                ...spec.series.map((s) => svg('tspan', { x: 0, dy: 15, fill: s.color }, s.name + ': ' + (spec.yFormat || fmt)((s.ys || [])[best]))));
            const anchorRight = px > m.l + pw * 0.6;
            tip.setAttribute('transform', `translate(${anchorRight ? px - 8 : px + 8} 0)`);
            tip.setAttribute('text-anchor', anchorRight ? 'end' : 'start');
            for (const t of tip.children) t.setAttribute('x', 0);
            hover.setAttribute('visibility', 'visible');
        });
        overlay.addEventListener('mouseleave', () => hover.setAttribute('visibility', 'hidden'));
        root.append(overlay);
        return root;
    }

    function chartCard(id, title, spec) {
        spec.title = title;
        const legend = el('div', { class: 'legend' }, ...spec.series.map((s) =>
            el('span', {}, el('span', { class: 'swatch', style: 'background:' + s.color }), s.name + (s.right ? ' (right axis)' : ''))));
        return el('section', { class: 'card chart', id }, el('h3', {}, title), lineChart(spec), legend);
    }

    // ---- the page ------------------------------------------------------------

    function tile(label, value, sub, id) {
        return el('div', { class: 'card tile', id }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value), el('div', { class: 'sub' }, sub || ''));
    }

    function render(s) {
        const w = s.workers || {};
        const c = s.curves || {};
        // A run needs its learner and rollouts (red when none); scripted
        // labelers are optional (people label over HTTP).
        const alive = (n, optional) => el('span', {}, el('span', { class: n > 0 ? 'dot' : optional ? 'dot idle' : 'dot off' }), fmt(n));
        const tiles = el('div', { class: 'status-grid' },
            tile('rollout workers', alive(w.rollout), 'alive', 'tile-rollout'),
            tile('learner', alive(w.learner), 'policy version ' + fmt(s.policy_version), 'tile-learner'),
            // workers.labeler counts both kinds; web_labeler is the people
            // active on the page in the last minute (docs/http-api.md).
            tile('labelers', alive(w.labeler, true),
                 fmt(w.web_labeler || 0) + ' on the page · ' + fmt((w.labeler || 0) - (w.web_labeler || 0)) + ' scripted',
                 'tile-labelers'),
            tile('queue', fmt(s.queue_depth), fmt(s.leased) + ' leased right now', 'tile-queue'),
            tile('labels', fmt(s.labels_total), fmt(s.labels_per_minute, 1) + ' per minute', 'tile-labels'),
            tile('env steps', fmt(s.env_steps), fmt(s.env_steps_per_s) + ' per second', 'tile-steps'));
        const rows = (s.labelers || []).slice().sort((a, b) => (b.labels || 0) - (a.labels || 0));
        const most = Math.max(1, ...rows.map((r) => r.labels || 0));
        const table = el('section', { class: 'card' }, el('h3', {}, 'Labelers'),
            rows.length
                ? el('table', { class: 'labelers' },
                    el('thead', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'labels'),
                        el('th', { title: 'share of answers agreeing with the majority of the answers to the same query' }, 'agrees with majority'),
                        el('th', { title: 'share of answers agreeing with the scripted teacher (the true reward)' }, 'agrees with teacher'))),
                    el('tbody', {}, ...rows.map((r) => el('tr', {},
                        el('td', {}, r.name),
                        el('td', {}, el('span', { class: 'bar', style: 'width:' + Math.round((60 * (r.labels || 0)) / most) + 'px' }), fmt(r.labels)),
                        el('td', {}, pct(r.agreement_majority)),
                        el('td', {}, pct(r.agreement_teacher))))))
                : el('p', { class: 'muted' }, 'No labels yet.'));
        const charts = el('div', { class: 'charts' },
            chartCard('chart-return', 'Return', {
                xs: c.env_steps, xLabel: 'env steps', yLabel: 'true return', yRightLabel: 'learned return',
                series: [
                    { name: 'true return', ys: c.true_return, color: COLORS.green },
                    { name: 'learned return', ys: c.learned_return, color: COLORS.blue, right: true },
                ],
            }),
            chartCard('chart-accuracy', 'Reward-model accuracy', {
                xs: c.labels, xLabel: 'labels', yLabel: 'accuracy', yDomain: [0, 1],
                yFormat: (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : (100 * v).toFixed(0) + '%'),
                series: [{ name: 'held-out accuracy', ys: c.reward_model_accuracy, color: COLORS.orange }],
            }),
            chartCard('chart-labels', 'Labels over the run', {
                xs: c.env_steps, xLabel: 'env steps', yLabel: 'labels', yInteger: true,
                series: [{ name: 'labels', ys: c.labels, color: COLORS.purple }],
            }));
        charts.append(table);
        $('#main').replaceChildren(tiles, charts);
    }

    async function refresh() {
        clearTimeout(timer);
        const my = epoch;
        try {
            const s = await api('GET', '/api/stats');
            if (my !== epoch) return;
            render(s);
            lastOk = Date.now();
            $('#banner').hidden = true;
            $('#updated').textContent = 'updated ' + new Date(lastOk).toLocaleTimeString();
        } catch (e) {
            if (my !== epoch) return;
            if (e instanceof AuthError) return signedOut(e.message);
            const b = $('#banner');
            b.hidden = false;
            b.className = 'banner warn';
            b.textContent = e.message + (lastOk ? ' · showing the figures from ' + RLHF.ago(lastOk) : '');
        }
        timer = setTimeout(refresh, REFRESH_MS);
    }

    function signedOut(message) {
        epoch++;
        clearTimeout(timer);
        RLHF.setToken('');
        $('#logout').hidden = true;
        start(message);
    }

    async function start(message) {
        if (!RLHF.token()) await RLHF.login($('#main'), (t) => api('GET', '/api/stats', undefined, t), message);
        $('#logout').hidden = false;
        refresh();
    }

    $('#logout').addEventListener('click', () => signedOut(''));
    start('');
})();
