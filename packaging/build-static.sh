#!/usr/bin/env bash
# A fully static armdock-agent and armdockctl for old systems (Ubuntu 15.04
# aarch64: glibc 2.21, systemd 219, no sd-bus in its libsystemd), against
# sdbus-c++ 2.1.0 and systemd 252's libsystemd built here as static
# libraries, and the armdock-agent-static Debian package. README: "Static
# build for old systems".
#
#   packaging/build-static.sh [STEP...]
#
# Steps (default: all of them, in this order):
#   deps     install the build machine's packages (apt-get)
#   sources  apt-get source systemd (bookworm) and sdbus-cpp 2.1.0 (trixie),
#            SHA-256 checked against the source index
#   libs     libsystemd.a and libsdbus-c++.a for x86-64 and aarch64, and the
#            sdbus-c++ 2.x code generator for the build machine
#   x86_64   the agent against 2.x, x86-64, static; runs its unit, glue and
#            integration tests (root, docker.io) unless ARMDOCK_SKIP_TESTS=1
#   aarch64  the fully static aarch64 agent and armdockctl
#   proof    prints file/readelf of the aarch64 binaries and runs the agent
#            under qemu-aarch64-static: no sysroot, in an empty chroot
#   deb      armdock-agent-static_<version>_arm64.deb and lintian on it
#   qemu_upgrade  the aarch64 agent under qemu completes an upgrade, rollbacks
#            and a drop-in in the x86-64 test sandbox (real systemd,
#            dbus-daemon, dockerd); see step_qemu_upgrade
#
# Environment:
#   ARMDOCK_CACHE   where sources and built libraries are kept between runs
#                   (default /var/cache/armdock-build; never inside the repo)
#   ARMDOCK_STATIC_OUT  build directories and the .deb (default build-static/)
#   ARMDOCK_SKIP_TESTS=1  the x86_64 step builds but runs no tests
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
static_dir=$here/static
# shellcheck source=packaging/arm64-host.sh
source "$here/arm64-host.sh"
cache=${ARMDOCK_CACHE:-/var/cache/armdock-build}
out=${ARMDOCK_STATIC_OUT:-$repo/build-static}
jobs=${ARMDOCK_JOBS:-2}

systemd_version=252.39-1~deb12u2
systemd_suite=bookworm
sdbus_version=2.1.0-1
sdbus_suite=trixie

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-static.sh: %s\n' "$*" >&2; exit 1; }

case "$cache" in
  "$repo"|"$repo"/*) die "ARMDOCK_CACHE=$cache is inside the repository; put it outside" ;;
esac
mkdir -p "$cache" "$out"

# --- deps -------------------------------------------------------------------
step_deps() {
  local want=(g++-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-user-static gperf python3-jinja2
    cmake meson ninja-build pkg-config libexpat1-dev file dpkg-dev lintian dbus
    libmount-dev libcap-dev libcrypt-dev libssl-dev libc6-dev
    libmount-dev:arm64 libcap-dev:arm64 libcrypt-dev:arm64 libssl-dev:arm64 libc6-dev:arm64
    libboost-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev scdoc
    libgtest-dev libgmock-dev)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg"
    dpkg --add-architecture arm64
    apt-get -o DPkg::Lock::Timeout=900 update -q
  fi
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends --no-remove "${missing[@]}"
  fi
}

# --- sources ------------------------------------------------------------------
src_list=/etc/apt/sources.list.d/armdock-static-src.sources
remove_src_list() {
  if [ -f "$src_list" ]; then
    rm -f "$src_list"
    apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null || true
  fi
}

# sha256_from_index PACKAGE VERSION FILE: the SHA-256 the source index gives.
sha256_from_index() {
  apt-cache showsrc "$1" | awk -v ver="$2" -v file="$3" '
    /^Package:/ { inpkg = 0 }
    /^Version:/ { inpkg = ($2 == ver) }
    /^Checksums-Sha256:/ { insum = 1; next }
    /^[^ ]/ { insum = 0 }
    inpkg && insum && $3 == file && !done { print $1; done = 1 }'
}

step_sources() {
  local dir=$cache/src
  mkdir -p "$dir"
  local systemd_tar=systemd_${systemd_version%%-*}.orig.tar.gz
  local sdbus_tar=sdbus-cpp_${sdbus_version%%-*}.orig.tar.gz
  if [ -f "$dir/$systemd_tar.ok" ] && [ -f "$dir/$sdbus_tar.ok" ]; then
    log "sources already fetched and verified in $dir"
    return
  fi
  log "adding deb-src entries ($src_list) for $systemd_suite and $sdbus_suite"
  trap remove_src_list EXIT
  cat >"$src_list" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $systemd_suite $sdbus_suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get -o DPkg::Lock::Timeout=900 update -q
  chmod 0777 "$dir"  # apt's _apt user downloads into it
  (cd "$dir" && apt-get source --download-only "systemd=$systemd_version")
  # Debian serves only sdbus-cpp 2.1.0's orig tarball (its .dsc and Debian
  # patches answer 404): keep what apt-get fetched, check it below.
  (cd "$dir" && apt-get source --download-only "sdbus-cpp=$sdbus_version") || true
  local pkg ver tar want got
  for spec in "systemd $systemd_version $systemd_tar" "sdbus-cpp $sdbus_version $sdbus_tar"; do
    read -r pkg ver tar <<<"$spec"
    want=$(sha256_from_index "$pkg" "$ver" "$tar")
    [ -n "$want" ] || die "$tar: no SHA-256 for $pkg $ver in the source index"
    [ -f "$dir/$tar" ] || die "$tar: apt-get source did not fetch it"
    got=$(sha256sum "$dir/$tar" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "$tar: SHA-256 $got, the source index says $want; delete it and run again"
    log "$tar: SHA-256 $got matches the source index"
    echo "$got" >"$dir/$tar.ok"
  done
  remove_src_list
  trap - EXIT
}

# --- libs ---------------------------------------------------------------------
unpack() {  # unpack TARBALL DIR: DIR holds the tarball's top directory's contents
  local tar=$1 dest=$2
  [ -d "$dest" ] && return
  mkdir -p "$dest.tmp"
  tar -xzf "$tar" -C "$dest.tmp" --strip-components=1
  mv "$dest.tmp" "$dest"
}

# The prefix of one architecture's static libraries. Its stamp names what it
# was built from, so a change of source or recipe rebuilds it.
prefix_of() { echo "$cache/$1/prefix"; }
recipe_hash() {
  { declare -f unpack build_libsystemd build_sdbus build_codegen
    cat "$static_dir"/cross/* "$static_dir"/pkgconfig/* "$cache"/src/*.ok; } | sha256sum | cut -c1-16
}

build_libsystemd() {  # ARCH
  local arch=$1 prefix src build cross=()
  prefix=$(prefix_of "$arch")
  src=$cache/src/systemd-${systemd_version%%-*}
  build=$cache/$arch/systemd-build
  unpack "$cache/src/systemd_${systemd_version%%-*}.orig.tar.gz" "$src"
  rm -rf "$build"
  if [ "$arch" = aarch64 ]; then
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@TOOLS@|$cache/tools|g" "$static_dir/cross/aarch64.ini.in" >"$cache/aarch64.ini"
    cross=(--cross-file "$cache/aarch64.ini")
  fi
  log "libsystemd.a for $arch"
  meson setup "$build" "$src" "${cross[@]}" --buildtype=release -Dstatic-libsystemd=pic -Dauto_features=disabled \
    -Dtests=false -Dmode=release >"$cache/$arch/systemd-setup.log" \
    || { tail -20 "$cache/$arch/systemd-setup.log"; die "systemd's meson setup failed for $arch"; }
  ninja -C "$build" -j"$jobs" version.h
  ninja -C "$build" -j"$jobs" libsystemd.a
  mkdir -p "$prefix/lib/pkgconfig" "$prefix/include/systemd"
  cp "$build/libsystemd.a" "$prefix/lib/"
  cp "$src"/src/systemd/sd-*.h "$src"/src/systemd/_sd-common.h "$prefix/include/systemd/"
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|${systemd_version%%.*}|g" "$static_dir/pkgconfig/libsystemd.pc.in" \
    >"$prefix/lib/pkgconfig/libsystemd.pc"
  rm -rf "$build"
}

build_sdbus() {  # ARCH
  local arch=$1 prefix src build toolchain=()
  prefix=$(prefix_of "$arch")
  src=$cache/src/sdbus-cpp-${sdbus_version%%-*}
  build=$cache/$arch/sdbus-build
  unpack "$cache/src/sdbus-cpp_${sdbus_version%%-*}.orig.tar.gz" "$src"
  rm -rf "$build"
  [ "$arch" = aarch64 ] && toolchain=(-DCMAKE_TOOLCHAIN_FILE="$static_dir/cross/aarch64-toolchain.cmake")
  log "libsdbus-c++.a ${sdbus_version%%-*} for $arch"
  PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig cmake -S "$src" -B "$build" -G Ninja "${toolchain[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF \
    -DSDBUSCPP_BUILD_CODEGEN=OFF -DSDBUSCPP_BUILD_TESTS=OFF -DSDBUSCPP_BUILD_EXAMPLES=OFF \
    -DSDBUSCPP_BUILD_DOCS=OFF -DSDBUSCPP_BUILD_LIBSYSTEMD=OFF >"$cache/$arch/sdbus-setup.log" \
    || { tail -20 "$cache/$arch/sdbus-setup.log"; die "sdbus-c++'s cmake failed for $arch"; }
  cmake --build "$build" -j"$jobs"
  cmake --install "$build" >/dev/null
  rm -rf "$build"
}

build_codegen() {  # the 2.x xml2cpp, for the build machine
  local src=$cache/src/sdbus-cpp-${sdbus_version%%-*} build=$cache/tools-build
  unpack "$cache/src/sdbus-cpp_${sdbus_version%%-*}.orig.tar.gz" "$src"
  rm -rf "$build"
  log "sdbus-c++-xml2cpp ${sdbus_version%%-*} for the build machine"
  cmake -S "$src/tools" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$cache/tools" \
    >"$cache/tools-setup.log" || { tail -20 "$cache/tools-setup.log"; die "the code generator's cmake failed"; }
  cmake --build "$build" -j"$jobs"
  cmake --install "$build" >/dev/null
  rm -rf "$build"
}

step_libs() {
  local stamp want arch prefix
  want=$(recipe_hash)
  for arch in x86_64 aarch64; do
    prefix=$(prefix_of "$arch")
    stamp=$prefix/.built
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
      log "$arch: libsystemd.a and libsdbus-c++.a cached in $prefix"
      continue
    fi
    rm -rf "$prefix"
    mkdir -p "$prefix/lib/pkgconfig" "$cache/$arch"
    build_libsystemd "$arch"
    build_sdbus "$arch"
    cp "$static_dir"/pkgconfig/*.pc "$prefix/lib/pkgconfig/"
    echo "$want" >"$stamp"
  done
  if [ -f "$cache/tools/.built" ] && [ "$(cat "$cache/tools/.built")" = "$want" ]; then
    log "sdbus-c++-xml2cpp cached in $cache/tools"
  else
    rm -rf "$cache/tools"
    build_codegen
    echo "$want" >"$cache/tools/.built"
  fi
  sed -e "s|@PREFIX@|$(prefix_of aarch64)|g" -e "s|@TOOLS@|$cache/tools|g" "$static_dir/cross/aarch64.ini.in" \
    >"$cache/aarch64.ini"
  sed -e "s|@TOOLS@|$cache/tools|g" "$static_dir/cross/x86_64.ini.in" >"$cache/x86_64.ini"
}

# --- x86_64: the 2.x build with its tests ----------------------------------
step_x86_64() {
  local prefix build=$out/x86_64
  prefix=$(prefix_of x86_64)
  [ -f "$prefix/.built" ] || die "no x86-64 libraries in $prefix: run the libs step first"
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$repo" --native-file "$cache/x86_64.ini" --buildtype=release \
      -Dpkg_config_path="$prefix/lib/pkgconfig" -Dstatic_build=true -Dtests=true -Dfault_injection=true
  fi
  meson compile -C "$build" -j"$jobs"
  check_static "$build/daemon/armdock-agent"
  check_static "$build/cli/armdockctl"
  if [ "${ARMDOCK_SKIP_TESTS:-0}" = 1 ]; then
    log "ARMDOCK_SKIP_TESTS=1: no tests run"
    return
  fi
  meson test -C "$build" --suite unit --suite glue --suite integration --num-processes 1 --print-errorlogs
}

# check_static FILE: no dynamic section, no interpreter.
check_static() {
  if readelf -d "$1" 2>&1 | grep -q 'There is no dynamic section'; then
    if readelf -l "$1" | grep -q 'INTERP'; then die "$1 asks for a program interpreter"; fi
    return
  fi
  die "$1 has a dynamic section: $(readelf -d "$1" | grep NEEDED | tr -s ' ' | tr '\n' ';')"
}

# --- aarch64: the shipped binaries ---------------------------------------------
step_aarch64() {
  local prefix build=$out/aarch64
  prefix=$(prefix_of aarch64)
  [ -f "$prefix/.built" ] || die "no aarch64 libraries in $prefix: run the libs step first"
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$repo" --cross-file "$cache/aarch64.ini" --buildtype=release \
      -Dstatic_build=true -Dtests=false -Dfault_injection=false --prefix=/usr --sysconfdir=/etc \
      -Dcpp_link_args="-B/usr/lib/aarch64-linux-gnu/ -L/usr/lib/aarch64-linux-gnu"
    # ^ glibc from libc6-dev:arm64 (Debian's security updates), not the cross
    #   toolchain's own libc.a, which can lag behind.
  fi
  meson compile -C "$build" -j"$jobs"
  check_static "$build/daemon/armdock-agent"
  check_static "$build/cli/armdockctl"
  mkdir -p "$out/bin-aarch64"
  aarch64-linux-gnu-strip -o "$out/bin-aarch64/armdock-agent" "$build/daemon/armdock-agent"
  aarch64-linux-gnu-strip -o "$out/bin-aarch64/armdockctl" "$build/cli/armdockctl"
}

# --- proof ----------------------------------------------------------------------
proof_pids=()
proof_dirs=()
proof_cleanup() {
  local pid d
  for pid in "${proof_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${proof_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for d in "${proof_dirs[@]}"; do
    mountpoint -q "$d/proc" 2>/dev/null && umount "$d/proc"
    rm -rf "$d"
  done
}

# min_kernel FILE: "3.7.0" from file's "for GNU/Linux 3.7.0".
min_kernel() { file -b "$1" | sed -n 's/.*for GNU\/Linux \([0-9.]*\).*/\1/p'; }

step_proof() {
  local bin=$out/bin-aarch64 f k tmp bus agent_pid state
  for f in "$bin/armdock-agent" "$bin/armdockctl"; do
    [ -x "$f" ] || die "$f is missing: run the aarch64 step first"
    echo "--- $(basename "$f"): $(stat -c %s "$f") bytes stripped"
    echo "file: $(file -b "$f")"
    file -b "$f" | grep -q 'ARM aarch64' || die "$f is not an aarch64 executable"
    file -b "$f" | grep -q 'statically linked' || die "$f is not statically linked"
    k=$(min_kernel "$f")
    [ -n "$k" ] || die "$f: file names no minimum kernel"
    if [ "$(printf '%s\n3.19\n' "$k" | sort -V | tail -1)" != 3.19 ] && [ "$k" != 3.19 ]; then
      die "$f needs Linux $k; Ubuntu 15.04 runs 3.19"
    fi
    echo "minimum kernel: $k (<= 3.19)"
    echo "readelf -d: $(readelf -d "$f" 2>&1 | grep -v '^$' | head -1)"
    check_static "$f"
  done
  echo "--- under qemu-aarch64-static, no sysroot"
  qemu-aarch64-static "$bin/armdock-agent" --version
  qemu-aarch64-static "$bin/armdockctl" --version

  echo "--- in an empty chroot: the agent, the bus socket and the emulator (binfmt_misc is not used)"
  trap proof_cleanup EXIT
  tmp=$(mktemp -d /tmp/armdock-proof.XXXXXX)
  proof_dirs+=("$tmp")
  mkdir -p "$tmp/run/dbus"
  cp /usr/bin/qemu-aarch64-static "$tmp/qemu-aarch64-static"
  cp "$bin/armdock-agent" "$tmp/armdock-agent"
  bus=$tmp/run/dbus/system_bus_socket
  dbus-daemon --session --nofork --address="unix:path=$bus" >"$tmp.dbus.log" 2>&1 &
  proof_pids+=($!)
  for _ in $(seq 100); do [ -S "$bus" ] && break; sleep 0.1; done
  [ -S "$bus" ] || die "the private dbus-daemon did not start: $(cat "$tmp.dbus.log")"
  echo "chroot holds: $(cd "$tmp" && find . -mindepth 1 \( -type f -o -type s \) | sort | tr '\n' ' ')"
  # No config file in the chroot: the defaults (system bus at
  # /run/dbus/system_bus_socket, state in /var/lib/armdock, which it creates).
  chroot "$tmp" /qemu-aarch64-static /armdock-agent >"$tmp.agent.log" 2>&1 &
  agent_pid=$!
  proof_pids+=("$agent_pid")
  state=""
  for _ in $(seq 600); do
    state=$(busctl --address="unix:path=$bus" get-property io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1 State 2>/dev/null) && break
    kill -0 "$agent_pid" 2>/dev/null || die "the agent in the chroot exited: $(cat "$tmp.agent.log")"
    sleep 0.1
  done
  [ -n "$state" ] || die "the agent in the chroot did not answer State in 60 s: $(tail -20 "$tmp.agent.log")"
  echo "busctl get-property io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1 State: $state"
  echo "bus name owner: $(busctl --address="unix:path=$bus" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s io.armdock.Agent1)"
  proof_cleanup
  proof_pids=()
  proof_dirs=()
  rm -f "$tmp.dbus.log" "$tmp.agent.log"
  trap - EXIT
}

# Step qemu_upgrade: the aarch64 agent under qemu
# as the x86-64 test sandbox's armdock-agent.service (systemd user manager,
# dbus-daemon, real dockerd), driven by the x86_64 build's test_agent_upgrade
# with ARMDOCK_AGENT_BINARY pointing at a qemu wrapper: one upgrade, a
# rollback through the method, a drop-in through `systemctl reload`, and a
# forced rollback (a failing smoke command).
#
# The agent accepts only engines for its own machine, and the sandbox's
# dockerd is x86-64. The sandbox's engine is therefore the real dockerd
# behind an aarch64 launcher (tests/engines/engine_launcher.c, static, a few
# hundred kB): the payload the agent checks, stages, swaps and backs up is an
# aarch64 ELF; systemd and the agent's `-v` run it through binfmt_misc and
# qemu, and it execs the real dockerd natively. The dockerinit payload, never
# run, is a copy of the launcher too: Rollback refuses a backup set holding
# an executable for another machine. qemu-aarch64 is registered
# with binfmt_misc for the time of the step (flag F, so the sandbox's own
# mount namespace sees it) and unregistered afterwards if it was not before.

step_qemu_upgrade() {
  local test=$out/x86_64/tests/integration/test_agent_upgrade wrapper launcher t0
  [ -x "$test" ] || die "$test is missing: run the x86_64 step first"
  [ -x "$out/bin-aarch64/armdock-agent" ] || die "no aarch64 agent: run the aarch64 step first"
  wrapper=$out/armdock-agent-qemu
  printf '#!/bin/sh\n# The aarch64 armdock-agent under user-mode qemu, no sysroot.\nexec /usr/bin/qemu-aarch64-static %s "$@"\n' \
    "$out/bin-aarch64/armdock-agent" >"$wrapper"
  chmod 0755 "$wrapper"
  launcher=$out/engine-launcher-aarch64
  aarch64-linux-gnu-gcc -static -Os -Wall -Werror -o "$launcher" "$repo/tests/engines/engine_launcher.c"
  aarch64-linux-gnu-strip "$launcher"
  echo "engine launcher: $(file -b "$launcher" | cut -d, -f1-2), $(stat -c %s "$launcher") bytes, execs /usr/sbin/dockerd ($(file -b /usr/sbin/dockerd | cut -d, -f1-2))"
  trap binfmt_qemu_cleanup EXIT
  binfmt_qemu_register || die "cannot register qemu-aarch64 with binfmt_misc"
  "$launcher" -v || die "the aarch64 launcher does not run through binfmt_misc"
  echo "--- the aarch64 agent under qemu, the x86-64 sandbox's systemd and dockerd behind the aarch64 launcher"
  t0=$(date +%s.%N)
  ARMDOCK_AGENT_BINARY=$wrapper ARMDOCK_ENGINES_DIR=$out/x86_64/tests/integration \
    ARMDOCK_GUARD_DROPIN=$repo/units/docker.service.d/armdock-guard.conf \
    ARMDOCK_SANDBOX_ENGINE=$launcher ARMDOCK_SANDBOX_DOCKERINIT=$launcher \
    "$test" --gtest_filter="${ARMDOCK_PROOF_TEST:-AgentUpgradeTest.*:EachFailure/AgentRollbackTest.BadEngineIsRolledBackByteForByte/SmokeCommandFails}"
  echo "qemu upgrade tests took $(echo "$(date +%s.%N) - $t0" | bc) s"
  binfmt_qemu_cleanup
  trap - EXIT
}

# --- deb ------------------------------------------------------------------------
# The directives of units/armdock-agent.service that the static unit leaves out
# (packaging/static/armdock-agent.service says why).
unit_left_out="ProtectKernelTunables ProtectKernelModules ProtectControlGroups MemoryDenyWriteExecute RestrictRealtime LockPersonality"

check_static_unit() {
  local d
  for d in $(grep -oE '^[A-Za-z]+=' "$repo/units/armdock-agent.service" | tr -d = | sort -u); do
    grep -q "^$d=" "$static_dir/armdock-agent.service" && continue
    case " $unit_left_out " in *" $d "*) continue ;; esac
    die "units/armdock-agent.service has $d=, which packaging/static/armdock-agent.service neither has nor lists as left out: check it against systemd 219 and add it to one of them"
  done
  for d in $unit_left_out; do
    if grep -q "^$d=" "$static_dir/armdock-agent.service"; then
      die "packaging/static/armdock-agent.service has $d=, which systemd 219 does not know"
    fi
  done
}

step_deb() {
  local build=$out/aarch64 stage=$out/deb-stage version size deb
  check_static_unit
  [ -x "$out/bin-aarch64/armdock-agent" ] || die "no aarch64 binaries: run the aarch64 step first"
  version=$(sed -n "s/^  version : '\(.*\)',/\1/p" "$repo/meson.build" | head -1)
  [ -n "$version" ] || die "no version in meson.build"
  rm -rf "$stage"
  DESTDIR=$stage meson install -C "$build" --no-rebuild --quiet
  install -m 0755 "$out/bin-aarch64/armdock-agent" "$stage/usr/sbin/armdock-agent"
  install -m 0755 "$out/bin-aarch64/armdockctl" "$stage/usr/bin/armdockctl"
  # systemd 219's unit, and the bus policy where dbus 1.8 (Ubuntu 15.04)
  # reads it: /usr/share/dbus-1/system.d is read from dbus 1.9.18 on.
  rm -f "$stage/usr/lib/systemd/system/armdock-agent.service"
  # Docker's guard drop-in goes beside the unit (systemd 219 knows ExecStartPre= and drop-in folders).
  mkdir -p "$stage/lib/systemd/system"
  mv "$stage/usr/lib/systemd/system/docker.service.d" "$stage/lib/systemd/system/"
  rmdir -p "$stage/usr/lib/systemd/system" 2>/dev/null || true
  install -D -m 0644 "$static_dir/armdock-agent.service" "$stage/lib/systemd/system/armdock-agent.service"
  mkdir -p "$stage/etc/dbus-1/system.d"
  mv "$stage/usr/share/dbus-1/system.d/io.armdock.Agent1.conf" "$stage/etc/dbus-1/system.d/"
  rmdir "$stage/usr/share/dbus-1/system.d"
  find "$stage/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +
  mkdir -p "$stage/usr/share/doc/armdock-agent-static" "$stage/DEBIAN"
  install -m 0644 "$static_dir/debian/copyright" "$stage/usr/share/doc/armdock-agent-static/copyright"
  printf 'armdock-agent-static (%s) unstable; urgency=medium\n\n  * Static build for old systems (packaging/build-static.sh).\n\n -- armdock-agent maintainers <maintainers@armdock-agent.example>  %s\n' \
    "$version" "$(date -R -d "@$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)")" \
    | gzip -9n >"$stage/usr/share/doc/armdock-agent-static/changelog.gz"
  install -D -m 0644 "$static_dir/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/armdock-agent-static"
  install -m 0644 "$static_dir/debian/conffiles" "$stage/DEBIAN/conffiles"
  for script in postinst prerm postrm; do
    install -m 0755 "$static_dir/debian/$script" "$stage/DEBIAN/$script"
  done
  size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$static_dir/debian/control.in" >"$stage/DEBIAN/control"
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum) >"$stage/DEBIAN/md5sums"
  find "$stage" -type d -exec chmod 0755 {} +
  deb=$out/armdock-agent-static_${version}_arm64.deb
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
  log "built $deb ($(stat -c %s "$deb") bytes)"
  dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
  dpkg-deb --contents "$deb"
  echo "--- lintian"
  lintian --tag-display-limit 0 "$deb" || die "lintian found errors in $deb"
}

main() {
  local steps=("$@")
  ((${#steps[@]})) || steps=(deps sources libs x86_64 aarch64 proof deb qemu_upgrade)
  for s in "${steps[@]}"; do
    declare -F "step_$s" >/dev/null || die "unknown step \"$s\" (deps sources libs x86_64 aarch64 proof deb qemu_upgrade)"
  done
  for s in "${steps[@]}"; do
    local t0=$SECONDS
    "step_$s"
    log "step $s: $((SECONDS - t0)) s"
  done
}

main "$@"
