#!/usr/bin/env bash
# Make sure the base image the Dockerfiles start FROM exists locally (default
# python:3.11-slim-bookworm). Order: already present → pull it → build a local stand-in from
# Debian packages, for machines that reach Debian's package mirror but no container registry
# (air-gapped users, and the CI machines). The stand-in is Debian 12 with Debian's Python 3.11,
# laid out like the official image: `python` and `pip` on PATH, pip allowed outside a venv.
# Needs root and debootstrap for the stand-in (~1.5 min).
set -euo pipefail
IMAGE=${1:-python:3.11-slim-bookworm}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo ">>> base image $IMAGE: present"
    exit 0
fi
if timeout 60 docker pull "$IMAGE" >/dev/null 2>&1; then
    echo ">>> base image $IMAGE: pulled"
    exit 0
fi
echo ">>> base image $IMAGE cannot be pulled: building a local stand-in from Debian bookworm packages"
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
# The host's own Debian mirror (deb822 sources first, then the one-line format).
MIRROR=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
         | grep -v security | head -n1 || true)
[[ -n "$MIRROR" ]] || MIRROR=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' \
                               | grep -v security | head -n1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d /tmp/python-base-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR" >/tmp/debootstrap.log 2>&1 \
    || { tail -20 /tmp/debootstrap.log; exit 1; }
rm -f "$ROOTFS"/usr/lib/python3.11/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
# The host's CA bundle and apt sources: pip and apt-get in builds reach what the host reaches.
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    cp /etc/apt/sources.list.d/*.sources "$ROOTFS/etc/apt/sources.list.d/"
fi
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$ROOTFS/etc/pip.conf"
# Like the official slim images: no documentation, manual pages or translations (and packages
# installed later add none), no apt lists or caches.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/share/lintian/*
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo ">>> base image $IMAGE: built locally ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=si)B)"
