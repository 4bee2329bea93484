#!/bin/sh
# Installs every build, test and bench dependency of ingressd from Debian's packages.
# Idempotent. With --if-missing it does nothing when everything is already present.
set -e
PKGS="build-essential pkg-config libevent-dev node-llhttp libssl-dev libpcre2-dev libyaml-dev liburing-dev \
libcriterion-dev curl wrk nginx-light haproxy openssl python3 procps"

missing() {
    for p in libevent libevent_openssl libevent_pthreads openssl libpcre2-8 yaml-0.1 liburing criterion; do
        pkg-config --exists "$p" 2>/dev/null || return 0
    done
    [ -f /usr/share/llhttp/llhttp.c ] || return 0
    for c in cc make curl wrk nginx haproxy openssl python3 ps; do
        command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || return 0
    done
    return 1
}

if [ "$1" = "--if-missing" ] && ! missing; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
# the Debian nginx/haproxy packages may start system services; the bench runs its own instances
$SUDO systemctl disable --now nginx haproxy >/dev/null 2>&1 || true
