#!/usr/bin/env bash
# `make test` runs this first. The browser tests (tests/monitoring/test_dashboard_browser.py) drive
# Debian's Chromium at /usr/bin/chromium through Playwright. When it is missing, install Debian's
# `chromium` package if we may (root, or sudo without a password prompt); otherwise stop at once, before
# a long test run, with the one command that fixes it.
#
# CHROMIUM names another path to look for (the tests use /usr/bin/chromium).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] && exit 0

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "make test needs Chromium at $CHROMIUM for its browser tests, and installing it needs root. Run:" >&2
    echo "  sudo apt-get install -y chromium" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "make test needs Chromium at $CHROMIUM for its browser tests; there is no apt-get here to install" \
         "Debian's chromium package: install Chromium so that $CHROMIUM runs it" >&2
    exit 1
fi

echo "Installing Debian's chromium (make test's browser tests drive $CHROMIUM) with apt-get..."
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
if [[ ! -x "$CHROMIUM" ]]; then
    echo "apt-get installed chromium, but $CHROMIUM is still missing" >&2
    exit 1
fi
