#!/usr/bin/env bash
# Create the project's virtual environment with a Python >= 3.11, installing what a fresh
# Debian machine lacks (python3-venv) when run as root. Idempotent.
set -euo pipefail
venv=${1:-.venv}
pick_python() {
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}
py=$(pick_python) || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    py=$(pick_python) || { echo "andon needs Python >= 3.11" >&2; exit 1; }
  else
    echo "andon needs Python >= 3.11 (apt-get install python3 python3-venv)" >&2; exit 1
  fi
}
if [ ! -x "$venv/bin/python" ]; then
  if ! "$py" -m venv "$venv" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      apt-get update -qq && apt-get install -y -qq "python${ver}-venv" python3-venv >/dev/null || true
    fi
    rm -rf "$venv"; "$py" -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install -q --upgrade pip
