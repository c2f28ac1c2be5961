#!/usr/bin/env bash
# What the tests need beyond the Python packages (Debian/Ubuntu, as root or with sudo; each step
# skipped when already present):
#   espeak-ng, sox, DejaVu fonts   the test media (speech resampled to 16 kHz, text images)
#   docker-compose (Compose v1)    `docker-compose config -q` on the Compose files
#   haproxy                        the load balancer of the replica failover test (scripts/replica_failover.py)
#   dclint (npm)                   the Compose linter, installed under ~/.cache/model-servers/npm
set -euo pipefail
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
APT=()
command -v espeak-ng >/dev/null || APT+=(espeak-ng)
command -v sox >/dev/null || APT+=(sox)
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || APT+=(fonts-dejavu-core)
command -v docker-compose >/dev/null || APT+=(docker-compose)
command -v npm >/dev/null || APT+=(npm)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || APT+=(haproxy)
if (( ${#APT[@]} )); then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT[@]}"
fi
DCLINT_VERSION=3.1.0
NPM_PREFIX="${XDG_CACHE_HOME:-$HOME/.cache}/model-servers/npm"
if [[ "$("$NPM_PREFIX/node_modules/.bin/dclint" --version 2>/dev/null)" != "$DCLINT_VERSION" ]]; then
    npm install --silent --no-audit --no-fund --prefix "$NPM_PREFIX" "dclint@$DCLINT_VERSION"
fi
