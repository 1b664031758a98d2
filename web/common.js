// common.js - what the labeling page and the status page share: the token
// (kept in localStorage after the login form), calls to the coordinator's
// /api/ with the Bearer header, and the login view.
//
// Errors are sorted into three kinds because each page reacts differently:
//   AuthError     401: the token is wrong or revoked -> back to the login form
//   HttpError     another 4xx/5xx, with the server's {"error": "..."} text
//   NetworkError  no answer at all (coordinator down, connection lost):
//                 the caller may retry the very same request
'use strict';

const RLHF = (window.RLHF = window.RLHF || {});

RLHF.TOKEN_KEY = 'rlhf.token';

RLHF.token = function () {
    try {
        return localStorage.getItem(RLHF.TOKEN_KEY) || '';
    } catch (e) {
        return RLHF._memToken || '';   // storage disabled: this tab only
    }
};

RLHF.setToken = function (t) {
    RLHF._memToken = t;
    try {
        if (t) localStorage.setItem(RLHF.TOKEN_KEY, t);
        else localStorage.removeItem(RLHF.TOKEN_KEY);
    } catch (e) { /* private mode: keep it in memory */ }
};

class AuthError extends Error {}
class HttpError extends Error {
    constructor(status, message) {
        super(message);
        this.status = status;
    }
}
class NetworkError extends Error {}
RLHF.AuthError = AuthError;
RLHF.HttpError = HttpError;
RLHF.NetworkError = NetworkError;

// One call to the API. Resolves with the parsed JSON body of a 2xx answer;
// rejects with one of the errors above. token defaults to the stored one.
RLHF.api = async function (method, path, body, token) {
    const headers = { Authorization: 'Bearer ' + (token || RLHF.token()) };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
        res = await fetch(path, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            cache: 'no-store',
        });
    } catch (e) {
        throw new NetworkError('cannot reach the coordinator (' + (e && e.message ? e.message : e) + ')');
    }
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
        try {
            data = JSON.parse(text);
        } catch (e) {
            data = null;
        }
    }
    const why = data && typeof data.error === 'string' ? data.error : text.slice(0, 200) || res.statusText;
    if (res.status === 401) throw new AuthError(why || 'the token was not accepted');
    if (!res.ok) throw new HttpError(res.status, why || 'HTTP ' + res.status);
    if (data === null) throw new HttpError(res.status, 'the coordinator sent no JSON');
    return data;
};

// A random UUID v4. crypto.randomUUID exists only in secure contexts
// (https, localhost); a page served over plain http from another host still
// has crypto.getRandomValues, so build the same thing from it.
RLHF.uuid = function () {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
};

RLHF.sleep = (ms) => new Promise((r) => setTimeout(r, ms));

RLHF.$ = (sel, root) => (root || document).querySelector(sel);

// Creates an element: el('div', {class: 'x', onclick: f}, child, 'text', ...)
RLHF.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
        if (c === null || c === undefined || c === false) continue;
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
};

// The login form: resolves once a token the coordinator accepts is stored.
// check(token) makes one authenticated call (and throws AuthError when the
// token is refused). message, when given, says why we are here (e.g. the
// previous token was refused).
RLHF.login = function (root, check, message) {
    const { el } = RLHF;
    return new Promise((resolve) => {
        const input = el('input', {
            id: 'token',
            name: 'token',
            type: 'password',
            autocomplete: 'current-password',
            placeholder: '64 hex characters from `rlhf labelers add NAME`',
            required: true,
            spellcheck: 'false',
        });
        const msg = el('p', { id: 'login-message', class: message ? 'login-message error' : 'login-message', role: 'alert' },
            message || '');
        const button = el('button', { type: 'submit', class: 'primary', id: 'login-button' }, 'Sign in');
        const form = el('form', { class: 'login card', id: 'login-form' },
            el('h1', {}, 'Sign in'),
            el('p', { class: 'muted' }, 'Paste the token you were given. It stays in this browser until you sign out.'),
            el('label', { for: 'token' }, 'Token'),
            input, msg, button);
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const t = input.value.trim();
            if (!t) return;
            button.disabled = true;
            msg.className = 'login-message';
            msg.textContent = 'Checking…';
            try {
                await check(t);
                RLHF.setToken(t);
                resolve(t);
            } catch (e) {
                msg.className = 'login-message error';
                msg.textContent = e instanceof AuthError ? 'This token was not accepted: ' + e.message : e.message;
                button.disabled = false;
                input.select();
            }
        });
        root.replaceChildren(form);
        input.focus();
    });
};

// "3 s ago", "2 min ago", or the clock time.
RLHF.ago = function (ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return new Date(ms).toLocaleTimeString();
};
