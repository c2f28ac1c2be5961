#!/usr/bin/env bash
# System packages the tests use to make their media: espeak-ng (speech), sox (resampling it to
# 16 kHz) and DejaVu fonts (text images). Debian/Ubuntu, as root or with sudo; skipped when already present.
set -euo pipefail
if command -v espeak-ng >/dev/null && command -v sox >/dev/null && [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    exit 0
fi
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng sox fonts-dejavu-core
