// chromium.mjs - how the browser tests start a browser: Debian's
// /usr/bin/chromium (deploy/install-deps.sh), headless, in a fresh profile
// (launchPersistentContext's user data directory, removed by the caller),
// with nothing that talks to the network on its own.
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// A browser context in the fresh profile directory `profile`.
export function launch(profile, options) {
    return chromium.launchPersistentContext(profile, Object.assign({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
    }, options || {}));
}
