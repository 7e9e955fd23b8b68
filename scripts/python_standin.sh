#!/usr/bin/env bash
# Make a stand-in for the Dockerfile's PYTHON_IMAGE where the pinned python image cannot be pulled
# (this machine kind reaches Debian's mirror and PyPI, not Docker Hub): Debian's python3 in a minimal
# rootfs, like the official python images (pip, venv, CA certificates, no EXTERNALLY-MANAGED marker).
#
#   scripts/python_standin.sh IMAGE      # imports the stand-in as IMAGE (podman), prints IMAGE
#
# The rootfs is made once by debootstrap and cached as a tarball in $CONTAINER_CHECK_CACHE (default
# .cache/container-check), keyed by its recipe, so later calls import it in seconds. Used by
# scripts/container_check.sh and tests/test_release_registry.py. Needs root, podman and (the first
# time) debootstrap. Environment: P2P_CI_STANDIN_SUITE (default bookworm: Python 3.11, the pinned
# minor version), DEBIAN_MIRROR, CONTAINERS_CONF (podman's settings for this VM: docs/deploy.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 IMAGE" >&2; exit 2; }
image="$1"
work="${CONTAINER_CHECK_CACHE:-$root/.cache/container-check}"
suite="${P2P_CI_STANDIN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
key="$(printf '%s %s %s' "$suite" "$packages" "$mirror" | sha256sum | cut -c1-12)"
tarball="$work/python-standin-${suite}-${key}.tar"
mkdir -p "$work"

if [ ! -s "$tarball" ]; then
    echo "python_standin: rootfs by debootstrap $suite from $mirror (cached after this run)" >&2
    command -v debootstrap > /dev/null 2>&1 || { echo "python_standin: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    rootfs="$work/rootfs-$$"
    rm -rf "$rootfs"
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log" >&2
        rm -rf "$rootfs"
        echo "python_standin: debootstrap $suite from $mirror failed" >&2
        exit 1
    fi
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    echo "python_standin: rootfs $(du -m "$tarball" | cut -f1) MB" >&2
fi
podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tarball" "$image" > /dev/null
echo "$image"
