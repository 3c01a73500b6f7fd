#!/usr/bin/env bash
# Browser tests of the chat page: headless Chromium against the real origin and the Ollama
# simulator, both started (and stopped) by the tests on free loopback ports.
#
# usage: tests/browser/run.sh [extra `node --test` arguments, e.g. --test-name-pattern=widget]
#   UPDATE_SCREENSHOTS=1  also refresh docs/screenshots/chat-{desktop,phone}.png
#   BROWSER_ARTIFACTS     screenshots and process logs (default: tests/browser/artifacts)
#   LIBRIASSIST_BIN       the origin binary (default: target/debug/libriassist, built here)
#   LIBRIASSIST_BASE_URL  test an already running deployment instead (e.g. through Envoy)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

command -v node >/dev/null || { echo "browser tests: node is missing" >&2; exit 1; }
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || "$root/scripts/setup.sh" step chromium

# --ignore-scripts: nothing may try to download a browser of its own; Debian's is used.
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi

if [ -z "${LIBRIASSIST_BASE_URL:-}" ] && [ -z "${LIBRIASSIST_BIN:-}" ]; then
    (cd "$root" && cargo build -p libriassist --quiet)
fi

cd "$here"
exec node --test --test-concurrency=1 "$@" chat.test.js
