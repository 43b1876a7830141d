#!/usr/bin/env bash
# Install Debian's Chromium (when missing) for the dashboard's browser tests and benchmark,
# and a CJK font so zh-TW pages render as text, not boxes, in the screenshots.
# Idempotent; called by `make services`. Playwright drives this binary through
# executable_path=/usr/bin/chromium and never downloads a browser of its own.
set -euo pipefail

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

CHROMIUM=/usr/bin/chromium
FONT=fonts-wqy-microhei # 5 MB, covers Traditional Chinese (fonts-noto-cjk is 90 MB)

pkgs=()
[ -x "$CHROMIUM" ] || pkgs+=(chromium)
dpkg -s "$FONT" >/dev/null 2>&1 || pkgs+=("$FONT")

if [ "${#pkgs[@]}" -eq 0 ]; then
    echo "services: chromium already installed ($CHROMIUM)"
    exit 0
fi

echo "services: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
# a parallel install (another `make services`) holds the dpkg lock: wait for it, do not fail
apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
if ! as_root "${apt[@]}" install "${pkgs[@]}" >/dev/null 2>&1; then
    as_root apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    as_root "${apt[@]}" install "${pkgs[@]}" >/dev/null
fi
[ -x "$CHROMIUM" ] || { echo "services: chromium did not install at $CHROMIUM" >&2; exit 1; }
echo "services: chromium ready ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
