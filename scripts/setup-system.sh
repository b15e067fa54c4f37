#!/usr/bin/env bash
# Prepare this machine for dtrace-nb: distribution packages, kernel headers, tracefs.
# Idempotent; must run as root. Everything the project needs from outside the venv is here,
# so a fresh machine (or CI) gets the same setup as a developer's.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "setup-system.sh: must run as root (it installs packages and mounts tracefs)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
KREL=$(uname -r)

need_pkgs=(python3-bpfcc bpftool python3-venv gcc make libc6-dev systemtap-sdt-dev strace bpftrace)
# Debian's Chromium drives the real-browser test of the live view (tests/test_browser.py);
# Playwright is pointed at it and never downloads a browser.
need_pkgs+=(chromium)
# `make conformance` runs dtrace-utils' suite, some of whose .r.p post-processors are gawk.
need_pkgs+=(gawk)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

headers_ok() { [ -e "/lib/modules/$KREL/build/include/linux/kconfig.h" ] || [ -e "/lib/modules/$KREL/build/include/generated/autoconf.h" ]; }

if [ ${#missing[@]} -gt 0 ] || ! headers_ok; then
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Kernel headers: bcc compiles against /lib/modules/$(uname -r)/build. Prefer the exact
# package; where the distribution has none for this kernel, link the generic one.
if ! headers_ok; then
  if apt-get install -y -qq --no-install-recommends "linux-headers-$KREL" 2>/dev/null; then
    :
  else
    apt-get install -y -qq --no-install-recommends linux-headers-amd64
    hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
    [ -n "$hdr" ] || { echo "setup-system.sh: linux-headers-amd64 installed no headers" >&2; exit 1; }
    mkdir -p "/lib/modules/$KREL"
    ln -sfn "$hdr" "/lib/modules/$KREL/build"
    ln -sfn "${common:-$hdr}" "/lib/modules/$KREL/source"
  fi
fi

# tracefs (tracepoint formats, uprobe events) and debugfs (older tools look there).
if ! mountpoint -q /sys/kernel/tracing; then
  mount -t tracefs nodev /sys/kernel/tracing
fi
if ! mountpoint -q /sys/kernel/debug; then
  mount -t debugfs nodev /sys/kernel/debug || true
fi

echo "setup-system.sh: packages, kernel headers ($KREL) and tracefs ready"
