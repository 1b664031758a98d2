// render.js - draws one frame of an environment from its render state.
//
// The contract (docs/web-app.md, "Renderers"):
//   RLHF_RENDER[render_kind] = function (ctx, state, w, h, info) { ... }
// draws the frame whose render state is `state` (an array of render_dim
// numbers, as the environment's render_state() wrote them, see include/env.h)
// into a 2D canvas context of w x h CSS pixels. The page has already scaled
// the context for the screen's pixel ratio and filled it with the theme's
// background, and calls the renderer inside save()/restore(), so a renderer
// may transform freely. `info` (optional to use) is
//   {env_id, step, length, theme}
// with theme = RLHF_RENDER_THEME() (colours for light or dark pages).
// A renderer may set .aspect (height / width, default 0.75) for the canvas.
//
// The classic-control drawings follow Gymnasium 0.29's render() geometry
// (screen size, scale, body sizes and colours), with the y axis pointing up
// as Gymnasium's final flip makes it; what a labeler needs to judge (track
// limits, the goal, the applied force or torque) is drawn a little clearer.
'use strict';

window.RLHF_RENDER = window.RLHF_RENDER || {};

// Colours for the current colour scheme. Renderers use these rather than
// fixed colours so a dark page does not show a white flash per segment.
window.RLHF_RENDER_THEME = function () {
    const dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
    return dark
        ? { dark: true, bg: '#161a20', fg: '#e8eaed', muted: '#5f6773', grid: '#2a3038', accent: '#7aa7ff',
            warn: '#ff7a6b', good: '#56d38a', cart: '#dfe3e8', pole: '#ca9865', axle: '#8184cb',
            rod: '#d85a5a', link: '#2bc4c4', joint: '#d0d040', flag: '#e0c800', hill: '#3a4350' }
        : { dark: false, bg: '#ffffff', fg: '#1d2127', muted: '#9aa1ab', grid: '#e7e9ee', accent: '#2f6fe4',
            warn: '#d8402f', good: '#1f9d55', cart: '#000000', pole: '#ca9865', axle: '#8184cb',
            rod: '#cc4d4d', link: '#00a6a6', joint: '#cccc00', flag: '#cccc00', hill: '#d8dde4' };
};

(function () {
    const R = window.RLHF_RENDER;

    // Maps a Gymnasium screen (sw x sh pixels, y up) onto the canvas,
    // centred and uniformly scaled; returns the scale used.
    function fitScreen(ctx, w, h, sw, sh) {
        const s = Math.min(w / sw, h / sh);
        ctx.translate((w - sw * s) / 2, (h + sh * s) / 2);
        ctx.scale(s, -s);
        return s;
    }

    function finite(state, n) {
        if (!Array.isArray(state) && !(state && typeof state.length === 'number')) return false;
        for (let i = 0; i < n; i++) if (!Number.isFinite(state[i])) return false;
        return true;
    }

    // Text drawn upright in an already-flipped context.
    function label(ctx, text, x, y, color, align) {
        ctx.save();
        ctx.scale(1, -1);
        ctx.fillStyle = color;
        ctx.font = '600 20px system-ui, sans-serif';
        ctx.textAlign = align || 'left';
        ctx.fillText(text, x, -y);
        ctx.restore();
    }

    // An arrow from (x0, y0) to (x1, y1).
    function arrow(ctx, x0, y0, x1, y1, color, width) {
        const a = Math.atan2(y1 - y0, x1 - x0), head = 4 + 2 * width;
        ctx.strokeStyle = color;
        ctx.fillStyle = color;
        ctx.lineWidth = width;
        ctx.beginPath();
        ctx.moveTo(x0, y0);
        ctx.lineTo(x1 - head * 0.6 * Math.cos(a), y1 - head * 0.6 * Math.sin(a));
        ctx.stroke();
        ctx.beginPath();
        ctx.moveTo(x1, y1);
        ctx.lineTo(x1 - head * Math.cos(a - 0.45), y1 - head * Math.sin(a - 0.45));
        ctx.lineTo(x1 - head * Math.cos(a + 0.45), y1 - head * Math.sin(a + 0.45));
        ctx.closePath();
        ctx.fill();
    }

    // ---- CartPole-v1: [x, theta] -------------------------------------------
    // cartpole.py: 600x400 screen, world width 2 * x_threshold = 4.8, pole
    // 10 px wide and 2 * length = 1.0 world units long, cart 50x30, track at
    // y = 100, axle a quarter of the cart's height above its centre; theta > 0
    // leans the pole to the right. The episode ends past |x| = 2.4 or
    // |theta| = 12 degrees: the limits are marked, the pole turns red past 12.
    R.cartpole = function (ctx, s, w, h, info) {
        const th = (info && info.theme) || RLHF_RENDER_THEME();
        if (!finite(s, 2)) throw new Error('cartpole: expected [x, theta], got ' + JSON.stringify(s));
        const x = s[0], theta = s[1];
        fitScreen(ctx, w, h, 600, 400);
        const scale = 600 / 4.8, cartw = 50, carth = 30, polew = 10, polelen = scale * 1.0, carty = 100;
        // Track and its limits.
        ctx.strokeStyle = th.fg;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(0, carty);
        ctx.lineTo(600, carty);
        ctx.stroke();
        ctx.fillStyle = th.muted;
        for (const lim of [-2.4, 2.4]) ctx.fillRect(lim * scale + 300 - 1.5, carty - 14, 3, 28);
        // Cart.
        const cx = x * scale + 300;
        ctx.fillStyle = th.cart;
        ctx.fillRect(cx - cartw / 2, carty - carth / 2, cartw, carth);
        // Pole, about the axle.
        const axley = carty + carth / 4;
        const fallen = Math.abs(theta) > (12 * 2 * Math.PI) / 360;
        ctx.save();
        ctx.translate(cx, axley);
        ctx.rotate(-theta);
        ctx.fillStyle = fallen ? th.warn : th.pole;
        ctx.fillRect(-polew / 2, -polew / 2, polew, polelen);
        ctx.restore();
        ctx.fillStyle = th.axle;
        ctx.beginPath();
        ctx.arc(cx, axley, polew / 2, 0, 2 * Math.PI);
        ctx.fill();
        if (Math.abs(x) > 2.4) label(ctx, 'off the track', 300, 360, th.warn, 'center');
        else if (fallen) label(ctx, 'pole fell', 300, 360, th.warn, 'center');
    };
    R.cartpole.aspect = 2 / 3;

    // ---- Pendulum-v1: [theta, torque] --------------------------------------
    // pendulum.py: 500x500 screen, bound 2.2, rod 1.0 long and 0.2 wide in
    // (204, 77, 77), theta = 0 upright, theta > 0 counter-clockwise. The
    // torque (clipped to [-2, 2]; > 0 pushes counter-clockwise) is drawn as a
    // curved arrow whose sweep grows with its size, as Gymnasium scales its
    // arrow image by |u| / 2.
    R.pendulum = function (ctx, s, w, h, info) {
        const th = (info && info.theme) || RLHF_RENDER_THEME();
        if (!finite(s, 2)) throw new Error('pendulum: expected [theta, torque], got ' + JSON.stringify(s));
        const theta = s[0], u = Math.max(-2, Math.min(2, s[1]));
        fitScreen(ctx, w, h, 500, 500);
        const scale = 500 / 4.4, len = 1 * scale, rw = 0.2 * scale;
        ctx.translate(250, 250);
        // The upright target, faintly.
        ctx.strokeStyle = th.grid;
        ctx.lineWidth = 2;
        ctx.setLineDash([6, 6]);
        ctx.beginPath();
        ctx.moveTo(0, 0);
        ctx.lineTo(0, len + rw);
        ctx.stroke();
        ctx.setLineDash([]);
        // Torque arrow around the axle.
        if (Math.abs(u) > 0.02) {
            const mag = Math.abs(u) / 2;   // 0..1
            const r = 0.55 * scale, sweep = (0.25 + 0.95 * mag) * Math.PI, start = theta + Math.PI / 2 + Math.PI;
            const a0 = start - (Math.sign(u) * sweep) / 2, a1 = start + (Math.sign(u) * sweep) / 2;
            ctx.strokeStyle = th.fg;
            ctx.globalAlpha = 0.45 + 0.55 * mag;
            ctx.lineWidth = 3 + 4 * mag;
            ctx.beginPath();
            ctx.arc(0, 0, r, a0, a1, u < 0);
            ctx.stroke();
            const ex = r * Math.cos(a1), ey = r * Math.sin(a1), dir = a1 + (Math.sign(u) * Math.PI) / 2;
            ctx.fillStyle = th.fg;
            ctx.beginPath();
            ctx.moveTo(ex + 16 * Math.cos(dir), ey + 16 * Math.sin(dir));
            ctx.lineTo(ex + 10 * Math.cos(dir + 2.2), ey + 10 * Math.sin(dir + 2.2));
            ctx.lineTo(ex + 10 * Math.cos(dir - 2.2), ey + 10 * Math.sin(dir - 2.2));
            ctx.closePath();
            ctx.fill();
            ctx.globalAlpha = 1;
        }
        // Rod with round ends.
        ctx.save();
        ctx.rotate(theta + Math.PI / 2);
        ctx.fillStyle = th.rod;
        ctx.fillRect(0, -rw / 2, len, rw);
        ctx.beginPath();
        ctx.arc(len, 0, rw / 2, 0, 2 * Math.PI);
        ctx.arc(0, 0, rw / 2, 0, 2 * Math.PI);
        ctx.fill();
        ctx.restore();
        ctx.fillStyle = th.cart;
        ctx.beginPath();
        ctx.arc(0, 0, 0.05 * scale, 0, 2 * Math.PI);
        ctx.fill();
    };
    R.pendulum.aspect = 1;

    // ---- MountainCar-v0 / MountainCarContinuous-v0: [position, force] ------
    // mountain_car.py: 600x400 screen over positions [-1.2, 0.6], hill
    // y = 0.45 sin(3 x) + 0.55, car 40x20 with 10 px clearance tilted by
    // cos(3 x) radians (as Gymnasium does), wheels of radius 8, flag at the
    // goal (0.5; 0.45 for the continuous task). The force (-1..1) is an arrow
    // on the car.
    R.mountaincar = function (ctx, s, w, h, info) {
        const th = (info && info.theme) || RLHF_RENDER_THEME();
        if (!finite(s, 2)) throw new Error('mountaincar: expected [position, force], got ' + JSON.stringify(s));
        const pos = s[0], force = Math.max(-1, Math.min(1, s[1]));
        const goal = info && /Continuous/.test(info.env_id || '') ? 0.45 : 0.5;
        fitScreen(ctx, w, h, 600, 400);
        const minp = -1.2, maxp = 0.6, scale = 600 / (maxp - minp);
        const height = (xs) => Math.sin(3 * xs) * 0.45 + 0.55;
        // Hill: filled below, outlined.
        ctx.beginPath();
        ctx.moveTo(0, 0);
        for (let i = 0; i <= 100; i++) {
            const xs = minp + ((maxp - minp) * i) / 100;
            ctx.lineTo((xs - minp) * scale, height(xs) * scale);
        }
        ctx.lineTo(600, 0);
        ctx.closePath();
        ctx.fillStyle = th.hill;
        ctx.fill();
        ctx.beginPath();
        for (let i = 0; i <= 100; i++) {
            const xs = minp + ((maxp - minp) * i) / 100;
            const X = (xs - minp) * scale, Y = height(xs) * scale;
            if (i === 0) ctx.moveTo(X, Y);
            else ctx.lineTo(X, Y);
        }
        ctx.strokeStyle = th.fg;
        ctx.lineWidth = 2;
        ctx.stroke();
        // Flag.
        const fx = (goal - minp) * scale, fy1 = height(goal) * scale, fy2 = fy1 + 50;
        ctx.beginPath();
        ctx.moveTo(fx, fy1);
        ctx.lineTo(fx, fy2);
        ctx.stroke();
        ctx.fillStyle = th.flag;
        ctx.beginPath();
        ctx.moveTo(fx, fy2);
        ctx.lineTo(fx, fy2 - 10);
        ctx.lineTo(fx + 25, fy2 - 5);
        ctx.closePath();
        ctx.fill();
        // Car.
        const carw = 40, carh = 20, clearance = 10;
        ctx.save();
        ctx.translate((pos - minp) * scale, clearance + height(pos) * scale);
        ctx.rotate(Math.cos(3 * pos));
        ctx.fillStyle = th.cart;
        ctx.fillRect(-carw / 2, 0, carw, carh);
        ctx.fillStyle = th.muted;
        for (const wx of [carw / 4, -carw / 4]) {
            ctx.beginPath();
            ctx.arc(wx, 0, carh / 2.5, 0, 2 * Math.PI);
            ctx.fill();
        }
        if (Math.abs(force) > 1e-3) arrow(ctx, 0, carh + 12, force * 34, carh + 12, th.accent, 4);
        ctx.restore();
        if (pos >= goal) label(ctx, 'goal reached', 300, 370, th.good, 'center');
    };
    R.mountaincar.aspect = 2 / 3;

    // ---- Acrobot-v1: [theta1, theta2] --------------------------------------
    // acrobot.py: 500x500 screen, bound 2.2, both links 1.0 long and 0.2
    // wide in (0, 204, 204), joints (204, 204, 0); theta1 = 0 hangs down,
    // theta2 relative to the first link. The goal line is at height 1 above
    // the pivot: the episode ends when the tip rises past it.
    R.acrobot = function (ctx, s, w, h, info) {
        const th = (info && info.theme) || RLHF_RENDER_THEME();
        if (!finite(s, 2)) throw new Error('acrobot: expected [theta1, theta2], got ' + JSON.stringify(s));
        const t1 = s[0], t2 = s[1];
        fitScreen(ctx, w, h, 500, 500);
        const scale = 500 / 4.4;
        ctx.translate(250, 250);
        // Goal line.
        ctx.strokeStyle = th.fg;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(-2.2 * scale, 1 * scale);
        ctx.lineTo(2.2 * scale, 1 * scale);
        ctx.stroke();
        const p1 = [Math.sin(t1) * scale, -Math.cos(t1) * scale];
        const p2 = [p1[0] + Math.sin(t1 + t2) * scale, p1[1] - Math.cos(t1 + t2) * scale];
        const joints = [[0, 0], p1], angles = [t1, t1 + t2];
        for (let i = 0; i < 2; i++) {
            ctx.save();
            ctx.translate(joints[i][0], joints[i][1]);
            ctx.rotate(angles[i] - Math.PI / 2);
            ctx.fillStyle = th.link;
            ctx.fillRect(0, -0.1 * scale, scale, 0.2 * scale);
            ctx.restore();
        }
        ctx.fillStyle = th.joint;
        for (const [x, y] of joints) {
            ctx.beginPath();
            ctx.arc(x, y, 0.1 * scale, 0, 2 * Math.PI);
            ctx.fill();
        }
        if (p2[1] > 1 * scale) label(ctx, 'goal reached', 0, 1.6 * scale, th.good, 'center');
    };
    R.acrobot.aspect = 1;
})();
