#!/usr/bin/env bash
# Proves the arm64 packages on booted arm64 systems: an arm64 systemd as PID 1
# (user-mode qemu-aarch64 through binfmt_misc), the package installed with
# dpkg -i, the unit started by that systemd, the policy read by its system
# bus, a drop-in taken on `systemctl reload`, a reboot, dpkg -r and dpkg -P.
#
#   packaging/check-booted-arm64.sh [bullseye|bookworm|trixie ...]   (default: all three)
#
# Packages (defaults: what the build scripts leave in this repository):
#   ARMDOCK_STATIC_DEB  build-static/armdock-agent-static_VERSION_arm64.deb
#                       (packaging/build-static.sh), checked on every system
#   ARMDOCK_ARM64_DEB   build-deb/armdock-agent_VERSION_arm64.deb
#                       (packaging/build-debs.sh arm64), checked on bookworm,
#                       the release whose libraries it is built against
#
# Each system's root is made once by mmdebstrap (minbase, plus systemd,
# systemd-sysv, dbus, adduser and procps) and cached in
# $ARMDOCK_CACHE (default /var/cache/armdock-build)/booted-arm64-SUITE; a run
# boots an overlay over it with `systemd-nspawn --boot` and throws the overlay
# away afterwards. Commands run in the container through nsenter into its
# init's namespaces, as root or, for the bus policy, as two users made there.
#
# The engine is a stand-in, not dockerd: packaging/booted/engine_api_stub.c,
# built statically for aarch64 in three versions. It answers the part of the
# Engine API the agent's health check reads (/_ping, /version, /info,
# /containers/json) behind a docker.socket/docker.service pair like Docker's;
# the upgrade swaps one aarch64 build of it for the next. Under qemu-user a
# process's /proc/PID/exe is the emulator, so the agent's check that the
# service runs the installed file (check_main_exe) is turned off here.
#
# The emulator is Debian 13's static qemu-aarch64 (10.0), fetched once with
# apt and registered for the run only (Debian 12's 7.2 cannot start trixie's
# systemd services). Two things qemu-user lacks are worked around inside the
# containers, both marked "qemu-user only": /run/systemd/incoming is made a
# mount point before services start, and a drop-in for every service
# empties LoadCredential=/ImportCredential= (the agent's unit has neither).
#
# Every step prints ok/FAIL and its time; each system ends with what
# `systemd-analyze verify` said of the unit. Everything runs in a private mount
# namespace (unshare -m); the container is stopped by the PID of the
# systemd-nspawn this script started. Needs root. Exits non-zero if any step
# failed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/arm64-host.sh
source "$repo/packaging/arm64-host.sh"
cache=${ARMDOCK_CACHE:-/var/cache/armdock-build}
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$repo/meson.build" | head -n1)
static_deb=${ARMDOCK_STATIC_DEB:-$repo/build-static/armdock-agent-static_${version}_arm64.deb}
dynamic_deb=${ARMDOCK_ARM64_DEB:-$repo/build-deb/armdock-agent_${version}_arm64.deb}
all_suites=(bullseye bookworm trixie)
# The root's recipe: a cached root made by another recipe is made again.
root_packages=systemd,systemd-sysv,dbus,adduser,procps,init-system-helpers
# The stand-in engine's versions: installed first, then one upgrade per package.
engine_versions=(24.0.1 24.0.2 24.0.3)

die() { echo "check-booted-arm64: $*" >&2; exit 2; }
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap, binfmt_misc, mounts, systemd-nspawn)"
suites=("$@")
((${#suites[@]})) || suites=("${all_suites[@]}")
for s in "${suites[@]}"; do
  [[ " ${all_suites[*]} " == *" $s "* ]] || die "unknown system '$s': one of ${all_suites[*]}"
done
check_deb() { # check_deb FILE PACKAGE HOW-TO-BUILD
  [[ -f $1 ]] || die "$1 does not exist; build it with $3"
  [[ $(dpkg-deb -f "$1" Package) == "$2" && $(dpkg-deb -f "$1" Architecture) == arm64 ]] ||
    die "$1 is not $2 for arm64"
}
check_deb "$static_deb" armdock-agent-static packaging/build-static.sh
static_deb=$(realpath "$static_deb")
if [[ " ${suites[*]} " == *" bookworm "* ]]; then
  check_deb "$dynamic_deb" armdock-agent "packaging/build-debs.sh arm64"
  dynamic_deb=$(realpath "$dynamic_deb")
fi

# Re-run in a private mount namespace (checked, not taken from the
# environment: every mount below must stay in it).
if [[ -z ${ARMDOCK_CHECK_NAMESPACE:-} || $(readlink /proc/self/ns/mnt) == "$(readlink /proc/1/ns/mnt)" ]]; then
  exec unshare -m --propagation private env ARMDOCK_CHECK_NAMESPACE=1 \
    ARMDOCK_STATIC_DEB="$static_deb" ARMDOCK_ARM64_DEB="$dynamic_deb" "$0" "${suites[@]}"
fi
# One run at a time: two would share the cached roots, the machine names and
# the binfmt_misc entry.
mkdir -p "$cache"
exec 9>"$cache/.check-booted-arm64.lock"
flock -n 9 || die "another check-booted-arm64.sh runs (it holds $cache/.check-booted-arm64.lock)"

logdir=$(mktemp -d /tmp/armdock-check-booted.XXXXXX)
total_start=$(date +%s.%N)
suite="" base="" run="" root="" nspawn_pid="" leader="" boot_no=0
summary=()

cleanup() {
  stop_container >/dev/null 2>&1 || true
  drop_overlay || true
  unregister_qemu >/dev/null || true
  rm -rf "$logdir"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the emulator
# Debian 12's qemu-user (7.2) cannot run systemd >= 255 as PID 1: it spawns
# every service through systemd-executor with clone flags that 7.2 rejects
# (EINVAL: "Failed to spawn executor", every unit "failed (Result:
# resources)"). Debian 13's qemu-user (10.0, static binaries) can. It is
# downloaded once with apt (signatures and hashes checked as for any package)
# into $cache/qemu-user-trixie, never installed, and registered with
# binfmt_misc under a name of its own for this run only: binfmt_misc tries
# the newest entry first, so an existing qemu-aarch64 entry is left alone.
qemu_dir=$cache/qemu-user-trixie
qemu_entry=/proc/sys/fs/binfmt_misc/armdock-qemu-aarch64
qemu_added=0
fetch_qemu() {
  local apt_opts deb
  if [[ ! -x $qemu_dir/x/usr/bin/qemu-aarch64 ]]; then
    mkdir -p "$qemu_dir/lists/partial" "$qemu_dir/cache/archives/partial"
    echo "deb [arch=amd64] $(debian_mirror trixie) trixie main" >"$qemu_dir/sources.list"
    apt_opts=(-q -o "Dir::Etc::SourceList=$qemu_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
      -o "Dir::State::Lists=$qemu_dir/lists" -o "Dir::Cache=$qemu_dir/cache" -o APT::Architectures::=amd64)
    apt-get "${apt_opts[@]}" update || return 1
    rm -f "$qemu_dir"/qemu-user_*.deb
    (cd "$qemu_dir" && apt-get "${apt_opts[@]}" download qemu-user) || return 1
    deb=$(ls "$qemu_dir"/qemu-user_*.deb)
    rm -rf "$qemu_dir/x"
    mkdir -p "$qemu_dir/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$qemu_dir/x" ./usr/bin/qemu-aarch64 \
      ./usr/libexec/qemu-binfmt/aarch64-binfmt-P ./usr/share/qemu/binfmt.d/qemu-aarch64.conf || return 1
  fi
  file -b "$qemu_dir/x/usr/bin/qemu-aarch64" | grep -q 'static' || { echo "qemu-aarch64 is not static"; return 1; }
  "$qemu_dir/x/usr/bin/qemu-aarch64" --version | head -n1
}
register_qemu() {
  local line
  binfmt_mount || return 1 # a qemu-aarch64 entry of the host's, if any, stays as it was
  if [[ -e $qemu_entry ]]; then
    echo "-1" >"$qemu_entry" || return 1 # left by a run that was killed (the lock rules out a live one)
  fi
  # The package's own line (flags P, O, F; the -binfmt-P link tells qemu that
  # the kernel passes argv[0]), under this script's name and path.
  line=$(sed -e 's|^:qemu-aarch64:|:armdock-qemu-aarch64:|' \
    -e "s|:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:|:$qemu_dir/x/usr/libexec/qemu-binfmt/aarch64-binfmt-P:|" \
    "$qemu_dir/x/usr/share/qemu/binfmt.d/qemu-aarch64.conf")
  [[ $line == :armdock-qemu-aarch64:*"$qemu_dir"* ]] || { echo "unexpected binfmt line: $line"; return 1; }
  printf '%s' "$line" >/proc/sys/fs/binfmt_misc/register || return 1
  qemu_added=1
  grep -E '^(interpreter|flags)' "$qemu_entry" | tr '\n' ' '
  grep -q '^flags: .*F' "$qemu_entry" || { echo "registered without the F flag"; return 1; }
}
unregister_qemu() {
  if ((qemu_added)) && [[ -e $qemu_entry ]]; then echo "-1" >"$qemu_entry"; fi
  qemu_added=0
  binfmt_qemu_cleanup
}

# ---------------------------------------------------------------- the engine
# Three static aarch64 builds of the stand-in engine, one per version.
build_engines() {
  local v
  mkdir -p "$logdir/engines"
  for v in "${engine_versions[@]}"; do
    aarch64-linux-gnu-gcc -static -Os -Wall -Wextra -Werror -DENGINE_VERSION="\"$v\"" \
      -DENGINE_BUILD="\"booted\"" -o "$logdir/engines/dockerd-$v" "$repo/packaging/booted/engine_api_stub.c" || return 1
    aarch64-linux-gnu-strip "$logdir/engines/dockerd-$v"
  done
  file -b "$logdir/engines/dockerd-${engine_versions[0]}" | cut -d, -f1-2
  "$logdir/engines/dockerd-${engine_versions[0]}" -v
}

# ---------------------------------------------------------------- the cached root
make_root() {
  rm -rf "$base"
  mmdebstrap --architectures=arm64 --variant=minbase --include="$root_packages" \
    "$suite" "$base" "$(debian_mirror "$suite")" || return 1
  echo "$root_packages" >"$base/.armdock-root-recipe"
}

# ---------------------------------------------------------------- this run's overlay
make_overlay() { # make_overlay stand-in|docker.io
  local engine=$1
  run=$(mktemp -d "$cache/run-booted.XXXXXX") || { run=""; return 1; }
  root=$run/root
  mkdir -p "$run/upper" "$run/work" "$root" "$cache/apt-archives-arm64-$suite/partial" || return 1
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$root" || return 1
  # Downloaded .debs are kept between runs.
  mount --bind "$cache/apt-archives-arm64-$suite" "${root:?}/var/cache/apt/archives" || return 1
  echo "armdock-$suite" >"${root:?}/etc/hostname"
  if [[ $engine == docker.io ]]; then
    # Debian's docker.io, installed later with apt, set up as in a container
    # without the kernel's netfilter: no iptables rules, no bridge, vfs.
    mkdir -p "${root:?}/etc/docker"
    echo '{"iptables": false, "ip-masq": false, "bridge": "none", "storage-driver": "vfs"}' \
      >"${root:?}/etc/docker/daemon.json" || return 1
  else
    standin_engine || return 1
  fi
  common_setup || return 1
  echo "overlay $run/upper over $base"
}

# What an operator has before the agent: an engine with Docker's two units.
standin_engine() {
  install -m 0755 "$logdir/engines/dockerd-${engine_versions[0]}" "${root:?}/usr/bin/dockerd"
  cat >"${root:?}/etc/systemd/system/docker.socket" <<'EOF'
[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=root

[Install]
WantedBy=sockets.target
EOF
  cat >"${root:?}/etc/systemd/system/docker.service" <<'EOF'
[Unit]
Description=Docker Application Container Engine (the booted check's stand-in)
After=docker.socket
Requires=docker.socket

[Service]
Type=notify
ExecStart=/usr/bin/dockerd -H fd://
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
  # Under qemu-user the container's systemd leaves /run/systemd/incoming a
  # plain folder, not the mount point it is on a real system, and from
  # systemd 256 every service with a mount namespace (PrivateTmp=, as the
  # agent's) fails with 226/NAMESPACE when the MS_SLAVE on it fails (EINVAL;
  # seen with strace). This unit makes it a mount point before any service
  # starts; nothing here uses what it would carry (systemctl bind).
  cat >"${root:?}/etc/systemd/system/armdock-check-incoming.service" <<'UNIT'
[Unit]
Description=Make /run/systemd/incoming a mount point (qemu-user only)
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /run/systemd/incoming && { mountpoint -q /run/systemd/incoming || mount --bind /run/systemd/incoming /run/systemd/incoming; }'

[Install]
WantedBy=sysinit.target
UNIT
  # systemd sets up a unit's credentials (LoadCredential=, from 256 also
  # ImportCredential=: journald, tmpfiles and sysusers have them) with mount
  # calls qemu-user does not carry (243/CREDENTIALS, EINVAL): without this
  # drop-in for every service, bookworm boots degraded and trixie without a
  # journal. The agent's unit has no credentials, so it runs the same.
  mkdir -p "${root:?}/etc/systemd/system/service.d"
  {
    echo "# qemu-user only: see packaging/check-booted-arm64.sh"
    echo "[Service]"
    echo "LoadCredential="
    if [[ $suite == trixie ]]; then echo "ImportCredential="; fi
  } >"${root:?}/etc/systemd/system/service.d/armdock-check-qemu.conf"
  mkdir -p "${root:?}/etc/systemd/system/sysinit.target.wants"
  ln -sf /etc/systemd/system/armdock-check-incoming.service "${root:?}/etc/systemd/system/sysinit.target.wants/"
  mkdir -p "${root:?}/etc/systemd/system/multi-user.target.wants" "${root:?}/etc/systemd/system/sockets.target.wants"
  ln -sf /etc/systemd/system/docker.service "${root:?}/etc/systemd/system/multi-user.target.wants/docker.service"
  ln -sf /etc/systemd/system/docker.socket "${root:?}/etc/systemd/system/sockets.target.wants/docker.socket"
}

common_setup() {
  # Where operators keep what they install: the packages and the new engines in /root.
  cp "$static_deb" "${root:?}/root/"
  [[ $suite == bookworm ]] && cp "$dynamic_deb" "${root:?}/root/"
  cp "$logdir"/engines/dockerd-* "${root:?}/root/"
  install -D -m 0644 "$repo/units/armdock-agent.service" "${root:?}/root/dynamic-unit/armdock-agent.service"
}

drop_overlay() {
  [[ -n $run ]] || return 0
  if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
    echo "the container still runs: $run is left in place"
    return 1
  fi
  if [[ -n $root ]]; then
    umount "${root:?}/var/cache/apt/archives" 2>/dev/null || true
    umount "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true
  fi
  rm -rf --one-file-system "$run"
  run="" root=""
}

# ---------------------------------------------------------------- the container
# enter_init INIT SECONDS COMMAND...: COMMAND in the namespaces of the
# container whose init is INIT, with a plain environment, killed after SECONDS.
enter_init() {
  local init=$1 limit=$2
  shift 2
  nsenter --target "$init" --mount --uts --ipc --net --pid --root --wd \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_COLORS=0 \
    timeout -k 5 "$limit" "$@"
}
parent_of() { awk '/^PPid:/ { print $2 }' /proc/"$1"/status 2>/dev/null; }
# wait_exit PID SECONDS: until PID is gone, at most SECONDS; fails if it is not.
wait_exit() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# container_init NSPAWN-PID: its child whose PID in the container's PID
# namespace is 1, the container's systemd (nothing while there is none).
container_init() {
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    if [[ $(awk '/^NSpid:/ { print $NF }' /proc/"$c"/status 2>/dev/null) == 1 ]]; then
      echo "$c"
      return 0
    fi
  done
}

boot_container() {
  boot_no=$((boot_no + 1))
  # A unified cgroup hierarchy for the container: trixie's systemd (257) no
  # longer boots on a legacy or hybrid one, and the others take it as well.
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --quiet --boot --register=no --keep-unit \
    --directory="$root" --machine="armdock-$suite" --resolv-conf=copy-host --console=pipe \
    </dev/null >"$run/console-$boot_no.log" 2>&1 &
  nspawn_pid=$!
  echo "systemd-nspawn PID $nspawn_pid"
  local deadline=$((SECONDS + 30))
  leader=""
  while [[ -z $leader ]] && ((SECONDS < deadline)); do
    kill -0 "$nspawn_pid" 2>/dev/null || { echo "systemd-nspawn exited:"; cat "$run/console-$boot_no.log"; return 1; }
    leader=$(container_init "$nspawn_pid")
    [[ -n $leader ]] || sleep 0.1
  done
  [[ -n $leader ]] || { echo "no init in the container after 30 s"; return 1; }
  echo "the container's init: PID $leader here, $(readlink /proc/"$leader"/exe) running $(tr '\0' ' ' </proc/"$leader"/cmdline)"
  # Its manager answers once /run/systemd/private exists; then --wait waits
  # for the boot to end (at most 10 minutes in all).
  local state=""
  deadline=$((SECONDS + 600))
  until [[ -S /proc/$leader/root/run/systemd/private ]]; do
    ((SECONDS < deadline)) && kill -0 "$nspawn_pid" 2>/dev/null || { echo "no manager socket in the container"; return 1; }
    sleep 0.2
  done
  ((deadline > SECONDS)) || { echo "no manager socket before the deadline"; return 1; }
  state=$(enter_init "$leader" $((deadline - SECONDS)) systemctl is-system-running --wait) || true
  echo "systemctl is-system-running: $state"
  if [[ $state == degraded ]]; then
    echo "failed units: $(inside systemctl --failed --no-legend --plain | awk '{ print $1 }' | paste -sd' ' -)"
    return 0
  fi
  [[ $state == running ]]
}

# stop_container [poweroff|reboot]: asks the container's systemd (over its
# own bus: signals to it are renumbered by qemu-user, SIGRTMIN+4 arrives as
# SIGRTMIN+1, rescue.target) to power off or reboot, and waits for
# systemd-nspawn to exit (with 133 after a reboot). After 120 s, or without a
# manager to ask, the container's init is killed (SIGKILL ends its PID
# namespace); both PIDs are checked to be this script's nspawn and its child.
stop_container() {
  local how=${1:-poweroff}
  [[ -n $nspawn_pid ]] || return 0
  local pid=$nspawn_pid init rc=0
  init=${leader:-$(container_init "$pid")}
  nspawn_pid="" leader=""
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    echo "systemd-nspawn had already exited ($rc): the container died"
    return 1
  fi
  if [[ $(parent_of "$pid") != "$$" ]]; then
    echo "PID $pid is not this script's systemd-nspawn: not signalled"
    return 1
  fi
  if [[ -n $init && $(parent_of "$init") == "$pid" ]]; then
    # The target itself, as `systemctl poweroff` starts it, without asking
    # logind about inhibitors (logind may not run in here).
    enter_init "$init" 30 systemctl start --no-block --job-mode=replace-irreversibly "$how.target" ||
      echo "systemctl start $how.target failed"
    wait_exit "$pid" 120 || echo "no $how in 120 s"
  fi
  if ! wait_exit "$pid" 10; then
    # The container's init first (found again, checked to be nspawn's child):
    # killing only systemd-nspawn would leave it running.
    init=$(container_init "$pid")
    [[ -n $init ]] && { echo "SIGKILL to the container's init (PID $init)"; kill -KILL "$init"; }
    wait_exit "$pid" 5 || { echo "systemd-nspawn still runs: SIGKILL"; kill -KILL "$pid"; }
  fi
  wait "$pid" 2>/dev/null || rc=$?
  echo "systemd-nspawn exited with $rc after $how"
  case $how:$rc in
    poweroff:0 | reboot:133) return 0 ;;
    *) return 1 ;;
  esac
}

# in_container: $leader is still the init of this script's container (its
# nspawn our child, it that nspawn's child, in another mount namespace), so
# nothing meant for the container runs on this machine after a crash.
in_container() {
  [[ -n $leader && -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null &&
    [[ $(parent_of "$nspawn_pid") == "$$" && $(parent_of "$leader") == "$nspawn_pid" &&
      $(readlink /proc/"$leader"/ns/mnt 2>/dev/null) != "$(readlink /proc/self/ns/mnt)" ]] ||
    { echo "check-booted-arm64: the container is gone (init PID ${leader:-none})" >&2; return 1; }
}

# inside COMMAND...: runs it in the container as root, with a plain
# environment, for at most 10 minutes.
inside() {
  in_container || return 1
  enter_init "$leader" 600 "$@"
}
# as_user USER COMMAND...: the same as USER, with that user's groups.
as_user() {
  local user=$1
  shift
  inside setpriv --reuid="$user" --regid="$user" --init-groups env HOME=/ "$@"
}

property() { inside busctl --system get-property io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1 "$1"; }

# ---------------------------------------------------------------- the checks
system_versions() {
  inside sh -c '. /etc/os-release; echo "$PRETTY_NAME"'
  inside dpkg-query -W -f='${Package} ${Version}\n' systemd dbus libc6
  inside uname -m
}

install_package() { # install_package FILE
  local deb rc=0
  deb=/root/$(basename "$1")
  inside dpkg -i "$deb" || rc=$?
  if ((rc != 0)) && [[ $package == armdock-agent ]]; then
    # The dynamic package's libraries are not in a minimal root: dpkg leaves
    # it unconfigured and apt brings them, as on any Debian system.
    echo "dpkg -i exited with $rc: apt-get -f install brings the dependencies"
    inside env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
    inside env DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q --no-install-recommends || return 1
  fi
  inside dpkg-query -W -f='${Package} ${Version} ${Status}\n' "$package" | tee /dev/stderr | grep -q 'install ok installed'
}

unit_active() {
  local state deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    state=$(inside systemctl is-active armdock-agent || true)
    [[ $state == active ]] && break
    sleep 0.2
  done
  echo "is-enabled: $(inside systemctl is-enabled armdock-agent || true), is-active: $state"
  inside systemctl show -p MainPID -p ExecMainStartTimestamp armdock-agent
  [[ $state == active ]] && return 0
  inside systemctl status --no-pager -n 20 armdock-agent
  return 1
}

state_idle() {
  local out
  out=$(property State)
  echo "State: $out"
  [[ $out == 's "idle"' ]]
}

verify_unit() { # verify_unit [UNIT-FILE]: default the installed unit
  # Every line systemd prints about the unit; its unknown-directive warnings
  # ("Unknown lvalue", from 252 "Unknown key") are kept in $unknown for the
  # summary. --man=no: no man-db in a minimal root.
  local out rc=0 unit=${1:-}
  [[ -n $unit ]] || unit=$(inside systemctl show -p FragmentPath --value armdock-agent)
  # As a service of the container's manager: run from outside its cgroup
  # tree, systemd-analyze cannot set up its own test manager.
  out=$(inside systemd-run --quiet --wait --pipe --collect systemd-analyze verify --man=no "$unit" 2>&1) || rc=$?
  echo "systemd-analyze verify $unit: exit $rc${out:+, it says:}"
  [[ -z $out ]] || printf '%s\n' "$out"
  unknown=$(printf '%s\n' "$out" | grep -oE "Unknown (lvalue|key name|key) '[^']+'" | grep -oE "'[^']+'" |
    tr -d "'" | sort -u | paste -sd, - || true)
  ((rc == 0))
}

# The record of unknown directives is only worth something if a directive
# this systemd does not know shows up in it: a unit with a made-up one.
verify_flags_unknown() {
  printf '[Unit]\nDescription=self-check\n\n[Service]\nExecStart=/bin/true\nArmdockMadeUpDirective=yes\n' |
    inside sh -c 'cat >/root/self-check.service' || return 1
  unknown=""
  verify_unit /root/self-check.service || true
  echo "recorded: ${unknown:-nothing}"
  [[ $unknown == ArmdockMadeUpDirective ]]
}

make_users() {
  inside sh -c 'id alice >/dev/null 2>&1 || useradd --no-create-home alice'
  inside sh -c 'id bob >/dev/null 2>&1 || useradd --no-create-home bob'
  # As the README says: the package made the group; the operator adds members.
  inside usermod -a -G armdock bob
  inside id alice
  inside id bob
}

# list_backups_as USER: a method call to the agent as USER over the system bus.
list_backups_as() { as_user "$1" busctl --system call io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1 ListBackups 2>&1; }

# An unprivileged user: the system bus refuses the method call (the policy),
# properties stay readable.
alice_denied() {
  local out rc=0
  out=$(list_backups_as alice) || rc=$?
  echo "alice ListBackups: exit $rc: $out"
  ((rc != 0)) || return 1
  # busctl prints the bus's refusal, not the agent's own error.
  [[ ($out == *"Access denied"* || $out == *"AccessDenied"* || $out == *"rejected"*) && $out != *allowed_groups* ]] ||
    return 1
  out=$(as_user alice busctl --system get-property io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1 State 2>&1)
  echo "alice State: $out"
  [[ $out == 's "idle"' ]]
}

# A member of group armdock: let through by the bus; before allowed_groups
# names the group the agent itself refuses, naming the key.
bob_refused_by_agent() {
  local out rc=0
  out=$(list_backups_as bob) || rc=$?
  echo "bob ListBackups, allowed_groups = []: exit $rc: $out"
  ((rc != 0)) && [[ $out == *allowed_groups* ]]
}

bob_allowed() {
  local out rc=0
  out=$(list_backups_as bob) || rc=$?
  echo "bob ListBackups, allowed_groups = [\"armdock\"]: exit $rc: $out"
  ((rc == 0)) || return 1
  as_user bob armdockctl status
}

# apply_config VERSION < TOML: the operator's /etc/armdock/agent.toml
# (written from inside the container), checked with --check-config, then
# `systemctl reload`; done once the agent's journal says it reloaded that
# file, on the engine's VERSION.
reloads() { inside journalctl -u armdock-agent -o cat | grep -c "config /etc/armdock/agent.toml reloaded" || true; }
apply_config() {
  local before deadline
  inside sh -c 'cat >/etc/armdock/agent.toml' || return 1
  inside armdock-agent --check-config --config /etc/armdock/agent.toml || return 1
  before=$(reloads)
  inside systemctl reload armdock-agent || return 1
  deadline=$((SECONDS + 30))
  while (($(reloads) <= before && SECONDS < deadline)); do sleep 0.2; done
  echo "journal lines \"config /etc/armdock/agent.toml reloaded\": $before before the reload, $(reloads) after"
  echo "CurrentVersion: $(property CurrentVersion)"
  (($(reloads) > before)) && [[ $(property CurrentVersion) == "s \"$1\"" ]]
}

# The stand-in engine's config: members of armdock may call methods.
# check_main_exe = false: under qemu-user /proc/PID/exe is the emulator,
# never the engine file.
configure_agent() {
  apply_config "$(inside /usr/bin/dockerd -v | sed 's/^Docker version \([^,]*\),.*/\1/')" <<'EOF'
[agent]
allowed_groups = ["armdock"]

[docker]
service = "docker.service"
socket_unit = "docker.socket"
socket = "/var/run/docker.sock"
check_main_exe = false

[[payload]]
name = "dockerd"
path = "/usr/bin/dockerd"
mode = 0o755
engine = true
EOF
}

# The drop-in of the stand-in's next build (see drop_and_reload); passes when
# the agent is idle on the new version with LastResult "success".
dropin_upgrade() { # dropin_upgrade VERSION
  local want=$1 t0
  t0=$(date +%s.%N)
  drop_and_reload "/root/dockerd-$want" || return 1
  upgrade_seconds=$(elapsed "$t0" "$(date +%s.%N)")
  echo "dockerd -v: $(inside /usr/bin/dockerd -v), $upgrade_seconds s"
  echo "docker.service: $(inside systemctl is-active docker.service), Healthy: $(property Healthy)"
  [[ $(property CurrentVersion) == "s \"$want\"" && $(property LastResult) == 's "success"' &&
    $(inside /usr/bin/dockerd -v) == "Docker version $want, build booted" ]]
}

restart_agent() {
  local before after
  before=$(inside systemctl show -p MainPID --value armdock-agent)
  inside systemctl restart armdock-agent || return 1
  after=$(inside systemctl show -p MainPID --value armdock-agent)
  echo "MainPID $before -> $after"
  [[ $after != 0 && $after != "$before" ]] || return 1
  state_idle
}

after_reboot() { # after_reboot VERSION
  unit_active || return 1
  state_idle || return 1
  echo "docker.service: $(inside systemctl is-active docker.service), dockerd -v: $(inside /usr/bin/dockerd -v)"
  [[ $(property CurrentVersion) == "s \"$1\"" ]]
}

journal_shows() {
  local lines fields
  lines=$(inside journalctl -u armdock-agent --no-pager -o cat | wc -l)
  fields=$(inside journalctl -u armdock-agent --no-pager -o verbose | grep -c '^ *ARMDOCK_TRANSACTION=' || true)
  echo "journalctl -u armdock-agent: $lines lines, $fields with ARMDOCK_TRANSACTION"
  inside journalctl -u armdock-agent --no-pager -o short-monotonic | grep -iE 'transaction|upgrade|commit|reload|start' | tail -n 12
  ((lines > 0 && fields > 0))
}

removed_keeps() {
  inside dpkg -r "$package" || return 1
  local state
  state=$(inside systemctl is-active armdock-agent || true)
  echo "after dpkg -r: armdock-agent $state; /usr/sbin/armdock-agent $(inside test -e /usr/sbin/armdock-agent && echo present || echo gone)"
  echo "kept: $(inside ls -d /var/lib/armdock /var/lib/armdock/backups /etc/armdock/agent.toml 2>&1 | tr '\n' ' ')"
  echo "docker.service: $(inside systemctl is-active docker.service), dockerd -v: $(inside /usr/bin/dockerd -v)"
  [[ $state != active ]] && inside test ! -e /usr/sbin/armdock-agent && inside test -d /var/lib/armdock &&
    inside test -f /etc/armdock/agent.toml && [[ $(inside systemctl is-active docker.service) == active ]]
}

purged_removes() {
  inside dpkg -P "$package" || return 1
  echo "after dpkg -P: $(inside ls -d /var/lib/armdock /etc/armdock 2>&1 | tr '\n' ' ')"
  echo "dpkg-query: $(inside dpkg-query -W -f='${Status}' "$package" 2>&1 || true)"
  echo "group armdock: $(inside getent group armdock || echo none)"
  inside test ! -e /var/lib/armdock && inside test ! -e /etc/armdock/agent.toml
}

# ---------------------------------------------------------------- Debian's dockerd
# On bookworm: the dynamic package beside Debian's own docker.io (a real
# arm64 dockerd 20.10 with containerd and runc, under the same qemu-user).
# /usr/sbin/dockerd belongs to docker.io, so the default dpkg_owned =
# "refuse" must refuse the upgrade with Docker untouched; "divert" then
# installs it; a rollback puts the packaged file back and undoes the
# diversion and the hold.
install_docker_io() {
  inside env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io || return 1
  docker_answers
}

docker_answers() {
  local out deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if out=$(inside docker version --format 'server {{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}' 2>&1); then
      echo "docker version: $out; docker.service MainPID $(inside systemctl show -p MainPID --value docker.service)"
      return 0
    fi
    sleep 0.2
  done
  echo "no answer in 60 s: $out"
  return 1
}

configure_real_engine() { # configure_real_engine refuse|divert
  echo "dpkg_owned = \"$1\""
  apply_config 20.10.24+dfsg1 <<EOF
[agent]
dpkg_owned = "$1"

[docker]
check_main_exe = false

[[payload]]
name = "dockerd"
path = "/usr/sbin/dockerd"
mode = 0o755
engine = true
EOF
}

# The new engine: Debian's dockerd with bytes appended, a different file
# that runs and reports the same version (as the x86-64 tests make theirs).
rebuilt_dockerd() {
  inside sh -c 'cp /usr/sbin/dockerd /root/dockerd-new && printf armdock-booted-check >>/root/dockerd-new &&
    sha256sum /usr/sbin/dockerd /root/dockerd-new'
}

# drop_and_reload FILE: FILE copied into the drop-in folder under the
# payload's name, then `systemctl reload`; waits (at most 3 minutes) until
# the agent is idle after a transaction other than the one before; prints
# the outcome.
drop_and_reload() {
  local before state result deadline=$((SECONDS + 180))
  before=$(property Transaction)
  inside install -m 0755 "$1" /var/lib/armdock/incoming/dockerd || return 1
  inside systemctl reload armdock-agent || return 1
  while ((SECONDS < deadline)); do
    state=$(property State) result=$(property LastResult)
    [[ $state == 's "idle"' && $(property Transaction) != "$before" ]] && break
    sleep 0.1
  done
  echo "State $state, LastResult $result, CurrentVersion $(property CurrentVersion)"
  echo "LastError: $(property LastError)"
}

sha_of() { inside sha256sum "$1" | cut -d' ' -f1; }

refused_when_packaged() {
  local sha pid
  sha=$(sha_of /usr/sbin/dockerd) pid=$(inside systemctl show -p MainPID --value docker.service)
  drop_and_reload /root/dockerd-new || return 1
  echo "/usr/sbin/dockerd $(sha_of /usr/sbin/dockerd) (was $sha); docker.service MainPID $(inside systemctl show -p MainPID --value docker.service) (was $pid)"
  [[ $(property LastResult) == 's "rejected"' && $(property LastError) == *docker.io* && $(property LastError) == *dpkg-divert* &&
    $(sha_of /usr/sbin/dockerd) == "$sha" && $(inside systemctl show -p MainPID --value docker.service) == "$pid" ]] ||
    return 1
  docker_answers
}

diverted_upgrade() {
  local new t0
  new=$(sha_of /root/dockerd-new)
  t0=$(date +%s.%N)
  drop_and_reload /root/dockerd-new || return 1
  upgrade_seconds=$(elapsed "$t0" "$(date +%s.%N)")
  echo "/usr/sbin/dockerd $(sha_of /usr/sbin/dockerd), $upgrade_seconds s"
  echo "dpkg-divert --list: $(inside dpkg-divert --list /usr/sbin/dockerd)"
  echo "apt-mark showhold: $(inside apt-mark showhold | paste -sd' ' -)"
  [[ $(property LastResult) == 's "success"' && $(sha_of /usr/sbin/dockerd) == "$new" ]] || return 1
  [[ $(inside dpkg-divert --list /usr/sbin/dockerd) == *"local diversion"* ]] || return 1
  [[ $(inside apt-mark showhold) == *docker.io* ]] || return 1
  docker_answers
}

rollback_to_packaged() {
  local packaged
  packaged=$(inside sha256sum /usr/sbin/dockerd.distrib | cut -d' ' -f1)
  inside armdockctl rollback || return 1
  echo "/usr/sbin/dockerd $(sha_of /usr/sbin/dockerd) (packaged: $packaged)"
  echo "dpkg-divert --list: $(inside dpkg-divert --list /usr/sbin/dockerd)"
  echo "apt-mark showhold: $(inside apt-mark showhold | paste -sd' ' -)"
  [[ $(sha_of /usr/sbin/dockerd) == "$packaged" && -z $(inside dpkg-divert --list /usr/sbin/dockerd) &&
    $(inside apt-mark showhold) != *docker.io* ]] || return 1
  docker_answers
}

check_real_dockerd() {
  package=armdock-agent
  echo "== armdock-agent and Debian's docker.io on $suite"
  step "this run's overlay, for docker.io" make_overlay docker.io || return 1
  step "systemd-nspawn --boot: until is-system-running" boot_container || return 1
  step "apt-get install docker.io (containerd, runc): dockerd answers" install_docker_io &&
    note "$(tail -n1 "$logdir/step-$step_no.log")" || return 1
  step "dpkg -i $(basename "$dynamic_deb")" install_package "$dynamic_deb" || return 1
  step "config: payload /usr/sbin/dockerd, dpkg_owned = refuse" configure_real_engine refuse || return 1
  step "dockerd with bytes appended, beside the packaged one" rebuilt_dockerd || return 1
  step "drop-in over docker.io's file refused; Docker untouched" refused_when_packaged &&
    note "$(sed -n 2p "$logdir/step-$step_no.log" | cut -c1-200)"
  step "dpkg_owned = divert" configure_real_engine divert || return 1
  upgrade_seconds=""
  step "drop-in + reload: diverted, held, upgraded, dockerd answers" diverted_upgrade &&
    sed -n '3,6p' "$logdir/step-$step_no.log" | sed 's/^/       /'
  summary+=("armdock-agent with docker.io on $suite: diverted drop-in upgrade of the real dockerd: ${upgrade_seconds:-?} s from the reload to idle")
  step "armdockctl rollback: packaged dockerd back, diversion and hold gone" rollback_to_packaged &&
    sed -n '2,4p' "$logdir/step-$step_no.log" | sed 's/^/       /'
  step "dpkg -P armdock-agent: Docker keeps running" purge_keeps_docker && note "$(tail -n1 "$logdir/step-$step_no.log")"
}

purge_keeps_docker() {
  inside dpkg -P armdock-agent || return 1
  docker_answers
}

# check_package FILE NEW-VERSION REBOOT: the operator's path with one package.
check_package() {
  local deb=$1 want=$2 reboot=$3 label
  package=$(dpkg-deb -f "$deb" Package)
  label="$package on $suite"
  echo "== $label"
  step "dpkg -i $(basename "$deb")" install_package "$deb" || return 1
  step "systemctl is-enabled / is-active armdock-agent" unit_active || return 1
  step "busctl --system get-property ... State" state_idle && note "$(tail -n1 "$logdir/step-$step_no.log")"
  unknown=""
  step "systemd-analyze verify armdock-agent.service" verify_unit || true
  sed 's/^/       /' "$logdir/step-$step_no.log" | head -n 20
  summary+=("$label: Unknown lvalue: ${unknown:-none}")
  if [[ $package == armdock-agent-static ]]; then
    # The dynamic package's unit (units/armdock-agent.service, every
    # sandboxing directive) as this systemd reads it, installed or not.
    unknown=""
    step "systemd-analyze verify units/armdock-agent.service (dynamic)" verify_unit /root/dynamic-unit/armdock-agent.service || true
    sed 's/^/       /' "$logdir/step-$step_no.log" | head -n 20
    summary+=("units/armdock-agent.service on $suite: Unknown lvalue: ${unknown:-none}")
  fi
  step "users alice (no group) and bob (group armdock)" make_users || true
  step "alice: method denied by the bus policy, State readable" alice_denied && note "$(head -n1 "$logdir/step-$step_no.log")"
  step "bob: through the bus, refused by the agent (allowed_groups)" bob_refused_by_agent &&
    note "$(head -n1 "$logdir/step-$step_no.log" | cut -c1-160)"
  step "config for this engine, allowed_groups = [armdock], reload" configure_agent && note "$(tail -n1 "$logdir/step-$step_no.log")"
  step "bob: ListBackups and armdockctl status allowed" bob_allowed
  step "armdockctl status (root)" inside armdockctl status && sed 's/^/       /' "$logdir/step-$step_no.log"
  upgrade_seconds=""
  step "drop-in dockerd $want + systemctl reload: upgrade" dropin_upgrade "$want" &&
    note "$(head -n1 "$logdir/step-$step_no.log")"
  summary+=("$label: drop-in upgrade to $want: ${upgrade_seconds:-?} s from the reload to idle on the new version")
  step "systemctl restart armdock-agent" restart_agent && note "$(head -n1 "$logdir/step-$step_no.log")"
  if ((reboot)); then
    step "systemctl reboot" stop_container reboot || true
    step "booted again: until is-system-running" boot_container || return 1
    step "after the reboot: agent active, idle, engine $want" after_reboot "$want" || true
  fi
  step "journalctl -u armdock-agent" journal_shows && sed 's/^/       /' "$logdir/step-$step_no.log" | head -n 14
  step "dpkg -r $package: unit stopped, state and config kept, Docker up" removed_keeps &&
    sed -n '1,3p' "$logdir/step-$step_no.log" | sed 's/^/       /'
  step "dpkg -P $package: state folder and config removed" purged_removes &&
    sed -n '1,3p' "$logdir/step-$step_no.log" | sed 's/^/       /'
}

check_suite() {
  suite=$1 base=$cache/booted-arm64-$1
  local failed_before=$failures t0
  t0=$(date +%s.%N)
  echo "== $suite arm64, booted"
  if [[ -f $base/.armdock-root-recipe && $(cat "$base/.armdock-root-recipe") == "$root_packages" ]]; then
    step "$suite arm64 root: cached in $base" test -x "$base/usr/bin/dpkg" || return 1
  else
    step "mmdebstrap $suite arm64 ($root_packages)" make_root || return 1
  fi
  step "this run's overlay, the stand-in engine and its units" make_overlay stand-in || return 1
  step "systemd-nspawn --boot: until is-system-running" boot_container || { stop_container; return 1; }
  note "$(grep 'is-system-running' "$logdir/step-$step_no.log")"
  grep -q '^failed units' "$logdir/step-$step_no.log" && note "$(grep '^failed units' "$logdir/step-$step_no.log")"
  summary+=("$suite: booted to is-system-running in $step_seconds s ($(grep -o 'is-system-running: .*' "$logdir/step-$step_no.log" | cut -d' ' -f2); $(grep '^failed units' "$logdir/step-$step_no.log" || echo 'no failed units'))")
  step "the system" system_versions && sed 's/^/       /' "$logdir/step-$step_no.log"
  summary+=("$suite: $(head -n1 "$logdir/step-$step_no.log"); $(sed -n '2,4p' "$logdir/step-$step_no.log" | tr '\n' ' ')")
  step "systemd-analyze verify names a made-up directive (self-check)" verify_flags_unknown &&
    note "$(tail -n1 "$logdir/step-$step_no.log")"
  check_package "$static_deb" "${engine_versions[1]}" 1 || true
  if [[ $suite == bookworm ]]; then
    check_package "$dynamic_deb" "${engine_versions[2]}" 0 || true
  fi
  step "poweroff" stop_container || true
  drop_overlay
  if [[ $suite == bookworm ]]; then
    check_real_dockerd || true
    step "poweroff" stop_container || true
    drop_overlay
  fi
  summary+=("$suite: $((failures - failed_before)) failed steps, $(elapsed "$t0" "$(date +%s.%N)") s in all")
}

# ---------------------------------------------------------------- run
echo "== armdock-agent on booted arm64 systems: ${suites[*]}"
echo "== packages: $static_deb${dynamic_deb:+, $dynamic_deb (bookworm)}"
step "host tools (mmdebstrap, systemd-nspawn, cross gcc)" \
  host_packages mmdebstrap systemd-container arch-test file gcc-aarch64-linux-gnu libc6-dev-arm64-cross || exit 1
step "qemu-user of Debian 13 (static), fetched once" fetch_qemu || exit 1
note "$(tail -n1 "$logdir/step-$step_no.log")"
step "qemu-aarch64 registered with binfmt_misc for this run (flag F)" register_qemu || exit 1
note "$(tail -n1 "$logdir/step-$step_no.log")"
step "the stand-in engine, static aarch64, versions ${engine_versions[*]}" build_engines || exit 1
note "$(tr '\n' ' ' <"$logdir/step-$step_no.log")"
for s in "${suites[@]}"; do
  check_suite "$s" || { stop_container >/dev/null 2>&1 || true; drop_overlay; }
done

echo "== summary"
printf '   %s\n' "${summary[@]}"
printf '== %d steps, %d failed, %s s in all\n' "$step_no" "$failures" "$(elapsed "$total_start" "$(date +%s.%N)")"
((failures == 0))
