#!/usr/bin/env bash
# Installs every Debian 12 package needed to build armdock-agent and run its
# tests and demo (a real systemd user manager, dbus-daemon and dockerd).
set -euo pipefail
packages=(
  # build
  meson ninja-build pkg-config gcc g++ python3
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev libboost-dev nlohmann-json3-dev
  libssl-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libgtest-dev libgmock-dev libcli11-dev scdoc
  # the fuzz targets (tests/fuzz): clang with libFuzzer and the sanitizer runtimes
  clang-14 libclang-rt-14-dev
  # the real parts the tests and the demo start
  systemd dbus docker.io containerd runc busybox-static util-linux curl iproute2
  # setcap/getcap: the tests that give the engine a file capability
  libcap2-bin
  # the fleet rollout (ansible/) and its tests: Ansible, its linter, the ssh client, and a
  # private ssh server (dropbear-bin has no service that would start on install) with sftp
  ansible-core ansible-lint openssh-client dropbear-bin openssh-sftp-server
  # the metrics file's tests: Prometheus' own parser of the text format
  python3-prometheus-client
  # signed payloads' tests: keys and signatures made by the real minisign
  minisign
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Recommends are left out: docker.io would pull a bridge/iptables setup the sandbox does not use.
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# prometheus-node-exporter serves the metrics file in a test: its program
# only, unpacked from Debian's package into .cache/ (installing the package
# would start its service on this machine).
exporter_dir="$(dirname "$0")/../.cache/node-exporter"
if [ ! -x "$exporter_dir/usr/bin/prometheus-node-exporter" ]; then
  echo "== unpacking prometheus-node-exporter into $exporter_dir"
  mkdir -p "$exporter_dir"
  ( cd "$exporter_dir" && { apt-get download -q prometheus-node-exporter ||
      { apt-get update -q && apt-get download -q prometheus-node-exporter; }; } &&
    dpkg-deb -x prometheus-node-exporter_*.deb . && rm -f prometheus-node-exporter_*.deb )
fi

# Debian's docker.io and needrestart packages themselves (.deb files, not
# installed here): the packaged-engine test installs them into a sandbox's
# own root with `dpkg --root`, their maintainer scripts left out.
debs_dir="$(dirname "$0")/../.cache/debs"
if ! ls "$debs_dir"/docker.io_*.deb "$debs_dir"/needrestart_*.deb >/dev/null 2>&1; then
  echo "== downloading docker.io and needrestart into $debs_dir"
  mkdir -p "$debs_dir"
  ( cd "$debs_dir" && { apt-get download -q docker.io needrestart ||
      { apt-get update -q && apt-get download -q docker.io needrestart; }; } )
fi
