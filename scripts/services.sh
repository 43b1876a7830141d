#!/usr/bin/env bash
# Install (when missing) and start, on loopback only, the services the test suite talks to.
# Idempotent; called by `make test`. Each service block checks before it acts.
set -euo pipefail
echo "services: none needed yet"
