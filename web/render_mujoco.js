// render_mujoco.js - draws the MuJoCo environments (core/env_mujoco.c) from
// their render states, for the labeling page.
//
// One drawing serves every model. A render state (render_kind
// "mujoco2d:<model>") is
//   [cam_x, cam_y, view_half, ground_y,  x0, y0, x1, y1, r,  x0, y0, ...]
// in metres: the view is centred on (cam_x, cam_y) and view_half metres wide
// each side; ground_y is the height of the ground line (< -100: no ground);
// then one capsule per geom of the model: the segment (x0, y0)-(x1, y1) of
// its axis and its radius (a sphere is a zero-length segment). The side-view
// models (hopper, half_cheetah, walker2d, inverted_pendulum,
// inverted_double_pendulum, ant) give x and z; the kinds ending in "-xy" (swimmer,
// reacher) are seen from above and give x and y.
//
// Colours: the geoms of a model are drawn in model order; the first one (the
// torso, the rail, the arena) in the body colour, the rest alternate so that
// left and right legs (walker2d) and the two links (reacher) can be told
// apart. Tick marks on the ground every metre make forward motion visible
// while the camera follows the body.
'use strict';

window.RLHF_RENDER = window.RLHF_RENDER || {};

(function () {
    const R = window.RLHF_RENDER;

    function theme(info) {
        if (info && info.theme) return info.theme;
        if (window.RLHF_RENDER_THEME) return window.RLHF_RENDER_THEME();
        return { fg: '#1d2127', muted: '#9aa1ab', grid: '#e7e9ee', accent: '#2f6fe4', warn: '#d8402f',
                 pole: '#ca9865', link: '#00a6a6', rod: '#cc4d4d', joint: '#cccc00' };
    }

    // Per-model touches: which geoms get which colour, which is the target.
    const STYLE = {
        hopper: { colors: ['pole', 'pole', 'pole', 'rod'] },
        walker2d: { colors: ['pole', 'pole', 'pole', 'rod', 'link', 'link', 'accent'] },
        half_cheetah: { colors: ['pole', 'pole', 'rod', 'rod', 'rod', 'link', 'link', 'link'] },
        'swimmer-xy': { colors: ['pole', 'link', 'rod'] },
        'reacher-xy': { colors: ['muted', 'muted', 'muted', 'muted', 'fg', 'link', 'link', 'joint', 'warn'] },
        inverted_pendulum: { colors: ['muted', 'fg', 'pole'] },
        inverted_double_pendulum: { colors: ['muted', 'fg', 'pole', 'rod'] },
        // torso, then per leg: hip piece, upper leg, lower leg (front left,
        // front right, back, right back); seen from the side, legs overlap
        ant: { colors: ['pole', 'link', 'link', 'link', 'rod', 'rod', 'rod', 'accent', 'accent', 'accent',
                        'joint', 'joint', 'joint'] },
    };

    function draw(model) {
        const style = STYLE[model] || { colors: [] };
        const fn = function (ctx, s, w, h, info) {
            const th = theme(info);
            if (!s || typeof s.length !== 'number' || s.length < 4 || (s.length - 4) % 5 !== 0)
                throw new Error('mujoco2d:' + model + ': expected 4 + 5k numbers, got ' + (s && s.length));
            for (let i = 0; i < s.length; i++)
                if (!Number.isFinite(s[i])) throw new Error('mujoco2d:' + model + ': state[' + i + '] is not finite');
            const cx = s[0], cy = s[1], half = s[2] > 0 ? s[2] : 1, ground = s[3];
            const scale = w / (2 * half);
            // metres -> canvas, y up
            const X = (x) => (x - cx) * scale + w / 2;
            const Y = (y) => h / 2 - (y - cy) * scale;
            if (ground > -100) {
                const gy = Y(ground);
                ctx.fillStyle = th.grid;
                ctx.fillRect(0, gy, w, h - gy);
                ctx.strokeStyle = th.fg;
                ctx.lineWidth = 1.5;
                ctx.beginPath();
                ctx.moveTo(0, gy);
                ctx.lineTo(w, gy);
                ctx.stroke();
                // a tick every metre, labelled every 5, so motion shows
                ctx.fillStyle = th.muted;
                ctx.font = '11px system-ui, sans-serif';
                ctx.textAlign = 'center';
                for (let m = Math.floor(cx - half) - 1; m <= Math.ceil(cx + half) + 1; m++) {
                    const x = X(m);
                    ctx.fillRect(x - 0.75, gy, 1.5, 8);
                    if (m % 5 === 0) ctx.fillText(m + ' m', x, gy + 20);
                }
            } else if (model.endsWith('-xy')) {
                // from above: a faint 0.5 m grid that scrolls with the body
                ctx.strokeStyle = th.grid;
                ctx.lineWidth = 1;
                ctx.beginPath();
                const step = half > 1 ? 0.5 : 0.1;
                for (let g = Math.floor((cx - half) / step) * step; g <= cx + half; g += step) {
                    ctx.moveTo(X(g), 0);
                    ctx.lineTo(X(g), h);
                }
                for (let g = Math.floor((cy - half) / step) * step; g <= cy + half * h / w + step; g += step) {
                    ctx.moveTo(0, Y(g));
                    ctx.lineTo(w, Y(g));
                }
                ctx.stroke();
            }
            ctx.lineCap = 'round';
            const n = (s.length - 4) / 5;
            for (let k = 0; k < n; k++) {
                const o = 4 + 5 * k;
                const x0 = X(s[o]), y0 = Y(s[o + 1]), x1 = X(s[o + 2]), y1 = Y(s[o + 3]);
                const r = Math.max(1, s[o + 4] * scale);
                ctx.strokeStyle = th[style.colors[k]] || th.pole || th.fg;
                ctx.fillStyle = ctx.strokeStyle;
                if (Math.abs(x1 - x0) < 0.01 && Math.abs(y1 - y0) < 0.01) {
                    ctx.beginPath();
                    ctx.arc(x0, y0, r, 0, 2 * Math.PI);
                    ctx.fill();
                } else {
                    ctx.lineWidth = 2 * r;
                    ctx.beginPath();
                    ctx.moveTo(x0, y0);
                    ctx.lineTo(x1, y1);
                    ctx.stroke();
                }
            }
        };
        fn.aspect = model.endsWith('-xy') ? 1 : 0.75;
        return fn;
    }

    for (const model of Object.keys(STYLE)) R['mujoco2d:' + model] = draw(model);
})();
