#!/bin/sh
# setup.sh - installs the browser test's one npm dependency (playwright-core,
# the exact version pinned in package.json) into tests/browser/node_modules,
# once. The browser itself is Debian's /usr/bin/chromium (deploy/install-deps.sh),
# never a downloaded one, so `npx playwright install` is not needed.
# Run by `make test` and `make screenshots`; exits non-zero when it cannot
# provide the dependency, so the tests that need it fail rather than skip.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
want=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' "$here/package.json")
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$here/node_modules/playwright-core/package.json" 2>/dev/null | head -n 1)
if [ -n "$want" ] && [ "$have" = "$want" ]; then
    exit 0
fi
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "setup.sh: $tool is missing (deploy/install-deps.sh installs it)" >&2; exit 1; }
done
[ -x /usr/bin/chromium ] || { echo "setup.sh: /usr/bin/chromium is missing (deploy/install-deps.sh installs it)" >&2; exit 1; }
echo "tests/browser: npm install playwright-core@$want" >&2
cd "$here"
npm install --no-audit --no-fund --no-save --loglevel=error >&2
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' node_modules/playwright-core/package.json 2>/dev/null | head -n 1)
if [ "$have" != "$want" ]; then
    echo "setup.sh: npm did not install playwright-core $want (have '${have:-nothing}')" >&2
    exit 1
fi
