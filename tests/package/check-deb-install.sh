#!/usr/bin/env bash
# Installs armdock-agent_VERSION_ARCH.deb for this machine's architecture with
# `dpkg -i` and checks the result, without changing this machine: inside a
# private mount namespace (the test sandbox's way, unshare -m), the host's own
# root is mounted as the lower layer of an overlay whose upper layer is a
# temporary folder, and dpkg runs chrooted into that overlay. When the script
# ends the namespace goes away with every mount, and the folder is removed.
#
#   tests/package/check-deb-install.sh build-deb/armdock-agent_0.1.0_amd64.deb
#
# Checks: the files land where the unit and the D-Bus policy expect them (the
# unit's ExecStart and --config, the policy's bus name against the interface
# XML, the group armdock of the policy, the conffile, the 0700 state folder,
# man pages, completion), the
# service is enabled, `armdock-agent --version` and `--check-config` work,
# Docker's guard drop-in is installed and lets Docker start,
# `systemd-analyze verify` passes on the installed unit, `dpkg -r` keeps the
# state folder and the conffile, `dpkg -P` deletes both.
# Needs root and the package's dependencies installed on this machine (the
# build dependencies of the package bring them). Ends with "N passed, N failed".
set -euo pipefail

deb=${1:?usage: check-deb-install.sh PACKAGE.deb}
deb=$(realpath "$deb")
[[ -f $deb ]] || { echo "check-deb-install: $deb does not exist (packaging/build-debs.sh builds it)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "check-deb-install: needs root (unshare -m, mount, chroot)" >&2; exit 2; }
[[ $(dpkg-deb -f "$deb" Architecture) == "$(dpkg --print-architecture)" ]] ||
  { echo "check-deb-install: $deb is not for this machine's architecture" >&2; exit 2; }

if [[ -z ${ARMDOCK_PKG_NAMESPACE:-} ]]; then
  exec unshare -m --propagation private env ARMDOCK_PKG_NAMESPACE=1 "$0" "$@"
fi

work=$(mktemp -d /tmp/armdock-pkgtest.XXXXXX)
root=$work/root
cleanup() {
  # The mounts live in this namespace only; unmount anyway so rm -rf never
  # walks into /proc or /dev.
  umount -R "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/upper" "$work/ovl-work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/ovl-work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
# An empty /run: no /run/systemd/system, so the maintainer scripts see no
# running systemd and only enable the unit (symlinks), as in an image build.
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
cp "$deb" "$root/tmp/"
debname=$(basename "$deb")

passed=0 failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
check() {  # check DESCRIPTION COMMAND...: runs the command in the chroot
  local what=$1 output
  shift
  if output=$(chroot "$root" "$@" 2>&1); then
    pass "$what"
  else
    fail "$what"
    printf '%s\n' "$output" | sed 's/^/      /'
  fi
}
in_root() { chroot "$root" "$@"; }

version=$(dpkg-deb -f "$deb" Version)
if ! out=$(in_root dpkg -i "/tmp/$debname" 2>&1); then
  printf '%s\n' "$out"
  fail "dpkg -i $debname (are its dependencies installed? apt-get build-dep brings them)"
  echo "$passed passed, $failed failed"
  exit 1
fi
pass "dpkg -i $debname"

unit=/lib/systemd/system/armdock-agent.service
check "the unit is at $unit" test -f "$unit"
exec_start=$(sed -n 's/^ExecStart=//p' "$root$unit")
binary=${exec_start%% *}
config=$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$exec_start")
check "ExecStart's program $binary is installed and executable" test -x "$binary"
check "ExecStart's --config $config is installed" test -f "$config"
check "ExecReload's program is there" test -x "$(sed -n 's/^ExecReload=\([^ ]*\).*/\1/p' "$root$unit")"
if in_root dpkg-query -W -f='${Conffiles}\n' armdock-agent | grep -q "^ $config "; then
  pass "$config is a conffile"
else
  fail "$config is a conffile"
fi
policy=/usr/share/dbus-1/system.d/io.armdock.Agent1.conf
xml=/usr/share/dbus-1/interfaces/io.armdock.Agent1.xml
check "the D-Bus policy is at $policy" test -f "$policy"
check "the interface XML is at $xml" test -f "$xml"
check "the group armdock that the policy lets call methods exists" getent group armdock
bus_name=$(sed -n 's/.*allow own="\([^"]*\)".*/\1/p' "$root$policy")
if [[ -n $bus_name ]] && grep -q "<interface name=\"$bus_name\"" "$root$xml" && grep -qaF "$bus_name" "$root$binary"; then
  pass "the policy lets root own $bus_name, the installed interface's name and the one the program requests"
else
  fail "the policy's bus name '$bus_name' is not the installed interface's or the program's"
fi
check "armdockctl is installed" test -x /usr/bin/armdockctl
for page in /usr/share/man/man1/armdockctl.1.gz /usr/share/man/man8/armdock-agent.8.gz /usr/share/man/man5/armdock-agent.toml.5.gz; do
  check "man page $page" test -f "$page"
done
check "bash completion" test -f /usr/share/bash-completion/completions/armdockctl
check "the fleet rollout playbook and role" test -f /usr/share/armdock-agent/ansible/rollout.yml -a -f /usr/share/armdock-agent/ansible/roles/armdock_upgrade/tasks/main.yml
if [[ $(stat -c %a "$root/var/lib/armdock") == 700 ]]; then
  pass "state folder /var/lib/armdock, mode 0700"
else
  fail "state folder /var/lib/armdock, mode 0700 (found $(stat -c %a "$root/var/lib/armdock" 2>&1))"
fi
check "the service is enabled (multi-user.target.wants)" test -L /etc/systemd/system/multi-user.target.wants/armdock-agent.service
if [[ $(in_root "$binary" --version 2>&1) == "armdock-agent ${version%%-*}" ]]; then
  pass "armdock-agent --version says ${version%%-*}"
else
  fail "armdock-agent --version says ${version%%-*} (it says: $(in_root "$binary" --version 2>&1))"
fi
check "armdock-agent --check-config --config $config" "$binary" --check-config --config "$config"
guard=/lib/systemd/system/docker.service.d/armdock-guard.conf
check "Docker's guard drop-in is at $guard" test -f "$guard"
guard_exec=$(sed -n 's/^ExecStartPre=//p' "$root$guard")
# shellcheck disable=SC2086 # the command line as systemd splits it (no quotes in it)
check "the guard ($guard_exec) lets Docker start on a fresh install" $guard_exec
check "systemd-analyze verify $unit" systemd-analyze verify "$unit"

# remove keeps the backups and the journal; purge deletes them.
mkdir -p "$root/var/lib/armdock/backups"
echo kept >"$root/var/lib/armdock/backups/marker"
check "dpkg -r armdock-agent" dpkg -r armdock-agent
check "after remove: the program is gone" test ! -e "$binary"
check "after remove: the state folder and its backups stay" test -f /var/lib/armdock/backups/marker
check "after remove: the conffile stays" test -f "$config"
check "dpkg -P armdock-agent" dpkg -P armdock-agent
check "after purge: the state folder is gone" test ! -e /var/lib/armdock
check "after purge: the conffile is gone" test ! -e "$config"
check "after purge: the service is no longer enabled" test ! -e /etc/systemd/system/multi-user.target.wants/armdock-agent.service

echo "$passed passed, $failed failed"
((failed == 0))
