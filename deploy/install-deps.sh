#!/bin/sh
# install-deps.sh - installs every Debian package the project builds, tests
# and runs with. Idempotent and non-interactive; when not root, prints the
# exact command to run instead.
set -eu

PKGS="build-essential pkg-config clang
libopenblas-dev libopenmpi-dev openmpi-bin
libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
libsqlite3-dev sqlite3 libinih-dev libmicrohttpd-dev libcmocka-dev
libmujoco-dev libsodium-dev
chromium
slurm-wlm slurmctld slurmd slurm-client munge"
# Node.js and npm drive the browser test (playwright-core from npm); a machine
# that already has a Node.js (e.g. NodeSource's, which bundles npm) keeps it.
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing:$missing" >&2
    echo "install-deps: run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
