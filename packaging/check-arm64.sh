#!/usr/bin/env bash
# Proves that armdock-agent_VERSION_arm64.deb installs and runs on arm64, from
# an x86-64 machine, and prints what its binaries need from the system.
#
#   packaging/check-arm64.sh [PATH/armdock-agent_VERSION_arm64.deb]
#   packaging/check-arm64.sh --root-only     # only prepare the cached root
#
# (default: build-deb/ of this repository, as packaging/build-debs.sh leaves it)
#
# 1. Installs debootstrap, qemu-user-static and the aarch64 binutils, makes
#    sure binfmt_misc is mounted and qemu-aarch64 registered with it.
# 2. Debootstraps a minimal Debian 12 arm64 root (--foreign, then the second
#    stage under qemu through binfmt_misc) from the Debian mirror this
#    machine's apt uses. The root is cached in $ARMDOCK_CACHE (default
#    /var/cache/armdock-build)/debian12-arm64 and never changed by a check:
#    each run installs into an overlay on top of it, thrown away at the end.
# 3. In that root: `dpkg -i` the package, `apt-get -f install` its
#    dependencies, `armdock-agent --version`, `--check-config` of the shipped
#    config, `systemd-analyze verify` of the unit; then a private dbus-daemon
#    and the agent on it (no systemd runs), and its `State` read with busctl.
# 4. The highest GLIBC_, GLIBCXX_, CXXABI_ and LIBSYSTEMD_ symbol versions and
#    the NEEDED libraries of armdock-agent and armdockctl, against what
#    Ubuntu 15.04 arm64 has.
#
# Every step prints its result and its time. Everything runs in a private
# mount namespace (unshare -m): nothing stays mounted on this machine, and the
# processes it starts are stopped by PID. Needs root. Exits non-zero if any
# step failed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${ARMDOCK_CACHE:-/var/cache/armdock-build}
base=$cache/debian12-arm64
suite=bookworm
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$repo/meson.build" | head -n1)
root_only=0
if [[ ${1:-} == --root-only ]]; then
  root_only=1
  shift
fi
deb=${1:-$repo/build-deb/armdock-agent_${version}_arm64.deb}

[[ $(id -u) == 0 ]] || { echo "check-arm64: needs root (debootstrap, binfmt_misc, mounts, chroot)" >&2; exit 2; }
if ((root_only)); then
  deb=/dev/null
else
[[ -f $deb ]] || { echo "check-arm64: $deb does not exist; build it with packaging/build-debs.sh arm64" >&2; exit 2; }
deb=$(realpath "$deb")
[[ $(dpkg-deb -f "$deb" Architecture) == arm64 ]] || { echo "check-arm64: $deb is not an arm64 package" >&2; exit 2; }
fi

if [[ -z ${ARMDOCK_CHECK_NAMESPACE:-} ]]; then
  if ((root_only)); then
    exec unshare -m --propagation private env ARMDOCK_CHECK_NAMESPACE=1 "$0" --root-only
  fi
  exec unshare -m --propagation private env ARMDOCK_CHECK_NAMESPACE=1 "$0" "$deb"
fi

# ---------------------------------------------------------------- steps
# shellcheck source=packaging/arm64-host.sh
source "$repo/packaging/arm64-host.sh"
total_start=$(date +%s.%N)
logdir=$(mktemp -d /tmp/armdock-check-arm64.XXXXXX)

root="" run=""
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -n $root ]]; then
    umount -R "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true
  fi
  [[ -n $run ]] && rm -rf "$run"
  binfmt_qemu_cleanup >/dev/null || true
  rm -rf "$logdir"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the cached root
debootstrap_first_stage() {
  rm -rf "$base"
  mkdir -p "$base" || return 1
  # systemd: systemd-analyze and busctl for the checks (not a dependency of
  # the package). dbus comes with the package's own Depends.
  debootstrap --arch=arm64 --foreign --variant=minbase --include=systemd "$suite" "$base" "$mirror"
}

debootstrap_second_stage() {
  # In this private namespace: whatever it mounts inside the root goes away with it.
  chroot "$base" /debootstrap/debootstrap --second-stage || return 1
  umount -R "$base/proc" "$base/sys" 2>/dev/null || true
  chroot "$base" /bin/true
}

base_apt_lists() {
  mount_chroot_api "$base" || return 1
  cp /etc/resolv.conf "$base/etc/resolv.conf" 2>/dev/null || true
  chroot "$base" apt-get update -q || return 1
  umount -R "$base/proc" "$base/dev" 2>/dev/null || true
  touch "$base/.armdock-apt-updated"
}

mount_chroot_api() {
  local r=$1
  mountpoint -q "$r/proc" || mount -t proc proc "$r/proc" || return 1
  mountpoint -q "$r/dev" || mount --rbind /dev "$r/dev" || return 1
}

# ---------------------------------------------------------------- this run's overlay
overlay_root() {
  run=$(mktemp -d "$cache/run.XXXXXX")
  root=$run/root
  mkdir -p "$run/upper" "$run/work" "$root" "$cache/apt-archives-arm64/partial"
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$root" || return 1
  mount_chroot_api "$root" || return 1
  mount -t tmpfs tmpfs "$root/run" || return 1
  mount -t tmpfs tmpfs "$root/tmp" || return 1
  # Downloaded .debs are kept between runs.
  mount --bind "$cache/apt-archives-arm64" "$root/var/cache/apt/archives" || return 1
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # No daemon starts from a maintainer script in here (no systemd runs either).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  cp "$deb" "$root/tmp/"
}

dpkg_install() {
  # dpkg -i leaves the package unconfigured when dependencies are missing
  # (exit 1); apt-get -f install then brings them. Both outcomes are fine here.
  chroot "$root" dpkg -i "/tmp/$(basename "$deb")" || echo "dpkg -i: dependencies to be installed by apt-get -f install"
}

apt_fix() {
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q --no-install-recommends || return 1
  chroot "$root" dpkg-query -W -f='${Status} ${Version}\n' armdock-agent | grep -q '^install ok installed'
}

agent_version() {
  local out
  out=$(chroot "$root" /usr/sbin/armdock-agent --version)
  echo "$out"
  [[ $out == "armdock-agent $version" ]]
}

check_config() {
  chroot "$root" /usr/sbin/armdock-agent --check-config --config /etc/armdock/agent.toml
}

verify_unit() {
  # man-db is not in the root: the Documentation= man page is checked on the
  # amd64 install (tests/package/check-deb-install.sh), not here.
  chroot "$root" systemd-analyze verify --man=no /lib/systemd/system/armdock-agent.service
}

private_bus() {
  mkdir -p "$root/run/armdock-check"
  chroot "$root" dbus-daemon --config-file=/usr/share/dbus-1/session.conf \
    --address=unix:path=/run/armdock-check/bus --nofork --nopidfile >"$logdir/dbus-daemon.log" 2>&1 &
  pids+=($!)
  echo "dbus-daemon PID $!"
  for _ in $(seq 300); do
    [[ -S $root/run/armdock-check/bus ]] && return 0
    sleep 0.1
  done
  echo "no socket after 30 s"
  return 1
}

start_agent() {
  # The shipped config, with the bus and the Docker socket pointed into this
  # chroot; supervision off (no Docker and no systemd run here).
  cat >"$root/etc/armdock/check.toml" <<'EOF'
[agent]
bus = "unix:path=/run/armdock-check/bus"
state_dir = "/var/lib/armdock"
log_level = "debug"

[docker]
socket = "/run/armdock-check/docker.sock"
monitor_interval_sec = 0
EOF
  chroot "$root" /usr/sbin/armdock-agent --check-config --config /etc/armdock/check.toml || return 1
  chroot "$root" /usr/sbin/armdock-agent --config /etc/armdock/check.toml >"$logdir/agent.log" 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
  echo "armdock-agent PID $agent_pid"
}

read_state() {
  local i
  for i in $(seq 600); do
    if state=$(chroot "$root" busctl --address=unix:path=/run/armdock-check/bus \
      get-property io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1 State 2>/dev/null); then
      echo "State: $state after $((i / 10)).$((i % 10)) s"
      return 0
    fi
    kill -0 "$agent_pid" 2>/dev/null || { echo "the agent exited:"; cat "$logdir/agent.log"; return 1; }
    sleep 0.1
  done
  echo "no answer in 60 s"; cat "$logdir/agent.log"; return 1
}

stop_agent() {
  kill -TERM "$agent_pid"
  local rc=0
  wait "$agent_pid" || rc=$?
  echo "armdock-agent exited with $rc after SIGTERM"
  tail -n 5 "$logdir/agent.log"
  ((rc == 0))
}

# ---------------------------------------------------------------- what the binaries need
extract_deb() {
  mkdir -p "$logdir/deb"
  dpkg-deb -x "$deb" "$logdir/deb"
}

highest() {  # highest PREFIX version among the dynamic symbols of FILE
  local prefix=$1 file=$2
  aarch64-linux-gnu-objdump -T "$file" | { grep -o "${prefix}[0-9][0-9.]*" || true; } | sort -u -V | tail -n1
}

print_needs() {
  local bin=$1 name glibc glibcxx cxxabi libsystemd needed v
  name=$(basename "$bin")
  glibc=$(highest GLIBC_ "$bin")
  glibcxx=$(highest GLIBCXX_ "$bin")
  cxxabi=$(highest CXXABI_ "$bin")
  libsystemd=$(highest LIBSYSTEMD_ "$bin")
  printf '  %s\n' "$name"
  printf '    %-24s %-20s %-26s %s\n' "symbol version" "needed" "Ubuntu 15.04 arm64 has" "ok there?"
  row() { printf '    %-24s %-20s %-26s %s\n' "$1" "${2:-none}" "$3" "$4"; }
  verdict() { # verdict NEEDED HAVE
    [[ -z $1 ]] && { echo yes; return; }
    [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n1) == "$2" ]] && echo yes || echo NO
  }
  row GLIBC_ "$glibc" "GLIBC_2.21 (glibc 2.21)" "$(verdict "$glibc" GLIBC_2.21)"
  row GLIBCXX_ "$glibcxx" "GLIBCXX_3.4.20 (GCC 4.9)" "$(verdict "$glibcxx" GLIBCXX_3.4.20)"
  row CXXABI_ "$cxxabi" "CXXABI_1.3.8 (GCC 4.9)" "$(verdict "$cxxabi" CXXABI_1.3.8)"
  row LIBSYSTEMD_ "$libsystemd" "LIBSYSTEMD_219 (no sd-bus)" "$(verdict "$libsystemd" LIBSYSTEMD_219)"
  v=$(aarch64-linux-gnu-objdump -T "$bin" | grep -c ' sd_bus_' || true)
  if ((v > 0)); then
    printf '    %-24s %s\n' "sd_bus_* imported" "$v, directly (public only from LIBSYSTEMD_221: none on 15.04)"
  else
    printf '    %-24s %s\n' "sd_bus_* imported" "none directly (through libsdbus-c++, see NEEDED)"
  fi
  printf '    NEEDED:\n'
  aarch64-linux-gnu-objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}' | while read -r lib; do
    printf '      %-26s %s\n' "$lib" "$(vivid_has "$lib")"
  done
}

# Which of these sonames Ubuntu 15.04 (vivid) arm64 ships, and in which package.
vivid_has() {
  case $1 in
    libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1) echo "yes (libc6 2.21)" ;;
    libstdc++.so.6) echo "yes, but only up to GLIBCXX_3.4.20 (libstdc++6 of GCC 4.9)" ;;
    libgcc_s.so.1) echo "yes (libgcc1)" ;;
    libsystemd.so.0) echo "yes, but only up to LIBSYSTEMD_219, without sd-bus (libsystemd0 219)" ;;
    libcrypto.so.1.0.0 | libssl.so.1.0.0) echo "yes (libssl1.0.0)" ;;
    libcrypto.so.3 | libssl.so.3) echo "NO (OpenSSL 3; vivid has 1.0.1f)" ;;
    libsdbus-c++.so.*) echo "NO (sdbus-c++ is not packaged in vivid; it needs sd-bus, see below)" ;;
    libtomlplusplus.so.*) echo "NO (toml++ is not packaged in vivid)" ;;
    ld-linux-aarch64.so.1) echo "yes (libc6 2.21)" ;;
    libspdlog.so.*) echo "NO (spdlog is not packaged as a library in vivid)" ;;
    libfmt.so.*) echo "NO (fmt is not packaged in vivid)" ;;
    *) echo "unknown" ;;
  esac
}

# ---------------------------------------------------------------- run
echo "== armdock-agent arm64 check: $deb"
echo "== cache: $cache"
step "host tools (debootstrap, qemu-user-static, aarch64 binutils)" \
  host_packages debootstrap qemu-user-static binutils-aarch64-linux-gnu || exit 1
step "qemu-aarch64 registered with binfmt_misc (flag F)" binfmt_qemu_register || exit 1
note "$(tail -n1 "$logdir/step-$step_no.log")"
mirror=$(debian_mirror "$suite")
mkdir -p "$cache"
if [[ -f $base/.armdock-base-complete ]]; then
  step "Debian 12 arm64 root: cached in $base" test -x "$base/usr/bin/dpkg" || exit 1
else
  step "debootstrap --foreign $suite arm64 from $mirror" debootstrap_first_stage || exit 1
  step "debootstrap --second-stage under qemu-aarch64" debootstrap_second_stage || exit 1
  touch "$base/.armdock-base-complete"
fi
if [[ ! -f $base/.armdock-apt-updated ]] || [[ -n $(find "$base/.armdock-apt-updated" -mmin +1440) ]]; then
  step "apt-get update in the root (once a day)" base_apt_lists || exit 1
fi
step "uname -m in the root (through qemu)" chroot "$base" uname -m || true
note "$(cat "$logdir/step-$step_no.log")"
if ((root_only)); then
  printf '== root ready in %s (%d steps, %d failed)\n' "$base" "$step_no" "$failures"
  exit $((failures > 0))
fi
step "this run's overlay on the cached root" overlay_root || exit 1
step "dpkg -i $(basename "$deb")" dpkg_install || true
step "apt-get -f install (the package's dependencies)" apt_fix || exit 1
step "armdock-agent --version" agent_version && note "$(head -n1 "$logdir/step-$step_no.log")" || true
step "armdock-agent --check-config --config /etc/armdock/agent.toml" check_config &&
  note "$(tail -n1 "$logdir/step-$step_no.log")" || true
step "systemd-analyze verify armdock-agent.service" verify_unit || true
step "private dbus-daemon in the root" private_bus || exit 1
if step "armdock-agent on the private bus" start_agent; then
  if step "busctl get-property ... State" read_state; then
    note "$(head -n1 "$logdir/step-$step_no.log")"
  fi
  step "SIGTERM stops the agent cleanly" stop_agent || true
fi

echo "== what the arm64 binaries need from the system (objdump -T / -p) against Ubuntu 15.04 arm64"
step "unpack the package's binaries" extract_deb || exit 1
for bin in "$logdir/deb/usr/sbin/armdock-agent" "$logdir/deb/usr/bin/armdockctl"; do
  [[ -f $bin ]] && print_needs "$bin"
done
# sd-bus comes in through sdbus-c++: what the root's copy needs from libsystemd.
sdbuscpp=$(ls "$root"/usr/lib/aarch64-linux-gnu/libsdbus-c++.so.1.* 2>/dev/null | head -n1 || true)
if [[ -n $sdbuscpp ]]; then
  printf '  %s (installed in the root as a dependency)\n' "$(basename "$sdbuscpp")"
  printf '    %-24s %-20s %-26s %s\n' "LIBSYSTEMD_" "$(highest LIBSYSTEMD_ "$sdbuscpp")" "LIBSYSTEMD_219 (no sd-bus)" \
    "NO: $(aarch64-linux-gnu-objdump -T "$sdbuscpp" | grep -c ' sd_bus_' || true) sd_bus_* symbols, public from LIBSYSTEMD_221"
fi

printf '== %d steps, %d failed, %s s in all\n' "$step_no" "$failures" "$(elapsed "$total_start" "$(date +%s.%N)")"
((failures == 0))
