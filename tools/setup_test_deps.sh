#!/bin/sh
# System packages the test suite needs beyond pip: headless Chromium + chromedriver for the web
# app's end-to-end test (tests/serving/test_serving_browser.py), from Debian/Ubuntu's apt.
# README's "Set up and run the tests" command runs this first, so it works on a fresh machine.
#
#   sh tools/setup_test_deps.sh          # installs only what is missing; root, or sudo without a password
#   MASKFACE_SKIP_BROWSER=1 ...          # skip: the browser test is then skipped too
#
# Exits non-zero with the reason when it cannot install (no apt-get, no root and no sudo).
set -eu

if [ "${MASKFACE_SKIP_BROWSER:-}" = "1" ]; then
    echo "setup_test_deps: MASKFACE_SKIP_BROWSER=1, not installing Chromium (the browser test will be skipped)"
    exit 0
fi
have() { command -v "$1" >/dev/null 2>&1; }
if { have chromium || have chromium-browser || have google-chrome; } && have chromedriver; then
    exit 0
fi
if ! have apt-get; then
    echo "setup_test_deps: Chromium + chromedriver are missing and apt-get is not available;" >&2
    echo "  install them with your package manager (or set MASKFACE_SKIP_BROWSER=1 to skip the browser test)" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then
        sudo="sudo"
    else
        echo "setup_test_deps: installing Chromium needs root (or sudo): apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi
echo "setup_test_deps: apt-get install chromium chromium-driver (web app end-to-end test)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
