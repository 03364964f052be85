#!/bin/bash
# Demo of armdock-agent against real parts, in a throw-away sandbox:
# a systemd user manager on a private bus (private mount namespace), its own
# containerd and dockerd (payload under a temp root, never /usr/bin), and the
# agent as a unit of that manager. Then one upgrade that succeeds and one that
# rolls back, with the agent's progress as it happens.
#
#   scripts/demo.sh [BUILD_DIR]        (default ./build; needs root)
#
# Uses BUILD_DIR/daemon/armdock-agent, BUILD_DIR/cli/armdockctl (which drives the
# agent, as an operator would) and BUILD_DIR/tests/integration/engine_exits.
# Everything it starts is stopped by PID on exit, also on failure or Ctrl-C.
# ARMDOCK_KEEP_SANDBOX=1 keeps the temp folder (logs, units, config).
set -euo pipefail

BUILD=$(realpath "${1:-./build}")
AGENT=$BUILD/daemon/armdock-agent
CTL=$BUILD/cli/armdockctl
BAD_ENGINE=$BUILD/tests/integration/engine_exits
REAL_DOCKERD=/usr/sbin/dockerd

die() { echo "demo: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (mount namespace, cgroups)"
[ -x "$AGENT" ] || die "no agent at $AGENT (build first: ninja -C $BUILD)"
[ -x "$CTL" ] || die "no armdockctl at $CTL"
[ -x "$BAD_ENGINE" ] || die "no test engine at $BAD_ENGINE"
for tool in unshare systemctl busctl dbus-daemon containerd curl "$REAL_DOCKERD"; do
    command -v "$tool" >/dev/null || die "missing $tool"
done

T=$(mktemp -d /tmp/armdock-demo.XXXXXX)
chmod 0711 "$T"
CG_NAME=armdock-sandbox-demo-${T##*.}
CGROUPS=()
MANAGER_PID=
BUS="unix:path=$T/runtime/bus"
export XDG_RUNTIME_DIR=$T/runtime XDG_CONFIG_HOME=$T/config XDG_DATA_HOME=$T/data-home
export DBUS_SESSION_BUS_ADDRESS=$BUS ARMDOCK_SANDBOX=$T SYSTEMD_PAGER='' SYSTEMD_COLORS=0

# Polls "$@" every 10 ms until it succeeds or $WAIT seconds pass.
wait_until() {
    local deadline=$((SECONDS + ${WAIT:-60}))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.01
    done
}

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

cgroup_pids() {
    local h
    for h in /sys/fs/cgroup/*/"$CG_NAME" /sys/fs/cgroup/"$CG_NAME"; do
        [ -d "$h" ] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -u
}

cleanup() {
    local rc=$? pid h left
    set +e
    trap - EXIT INT TERM
    echo "== cleaning up $T"
    if [ -n "$MANAGER_PID" ] && alive "$MANAGER_PID"; then
        kill -TERM "$MANAGER_PID"            # the manager stops its units
        for _ in $(seq 1500); do alive "$MANAGER_PID" || break; sleep 0.01; done
        alive "$MANAGER_PID" && kill -KILL "$MANAGER_PID"
        wait "$MANAGER_PID" 2>/dev/null
    fi
    for _ in $(seq 500); do                  # shims and anything else left in our cgroup
        pids=$(cgroup_pids)
        [ -z "$pids" ] && break
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
        sleep 0.01
    done
    for _ in $(seq 500); do                  # busy until PID 1 reaps the killed ones
        left=''
        for h in /sys/fs/cgroup/*/"$CG_NAME" /sys/fs/cgroup/"$CG_NAME"; do
            [ -d "$h" ] && { find "$h" -depth -type d -exec rmdir {} + 2>/dev/null; [ -d "$h" ] && left=1; }
        done
        [ -z "$left" ] && break
        sleep 0.01
    done
    if [ -n "${ARMDOCK_KEEP_SANDBOX:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the sandbox --------------------------------------------------------------
mkdir -p "$T"/{runtime,config/systemd/user,empty/system,root/usr/bin,root/usr/lib/docker,state,incoming} \
         "$T"/{containerd/root,containerd/state,docker/data,docker/exec,logs,new,data-home}
chmod 0711 "$T/runtime"
install -m 0755 -o root -g root "$REAL_DOCKERD" "$T/root/usr/bin/dockerd"
install -m 0755 -o root -g root /bin/true "$T/root/usr/lib/docker/dockerinit"
U=$T/config/systemd/user

cat >"$T/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
printf '[Socket]\nListenStream=%%t/bus\nSocketMode=0666\n' >"$U/dbus.socket"
cat >"$U/dbus.service" <<EOF
[Unit]
Requires=dbus.socket
[Service]
ExecStart=/usr/bin/dbus-daemon --config-file=$T/dbus.conf --address=systemd: --nofork --nopidfile --systemd-activation
StandardOutput=append:$T/logs/dbus.log
StandardError=inherit
EOF
cat >"$U/containerd.service" <<EOF
[Service]
Type=notify
ExecStart=/usr/bin/containerd --address $T/containerd.sock --root $T/containerd/root --state $T/containerd/state
Delegate=yes
KillMode=process
StandardOutput=append:$T/logs/containerd.log
StandardError=inherit
EOF
printf '[Socket]\nListenStream=%s\nSocketMode=0660\n' "$T/docker.sock" >"$U/docker.socket"
cat >"$U/docker.service" <<EOF
[Unit]
Requires=docker.socket containerd.service
After=docker.socket containerd.service
[Service]
Type=notify
NotifyAccess=all
ExecStart=$T/root/usr/bin/dockerd -H fd:// --containerd=$T/containerd.sock --data-root=$T/docker/data --exec-root=$T/docker/exec --pidfile=$T/docker/docker.pid --iptables=false --ip-masq=false --bridge=none --storage-driver=vfs --cgroup-parent=/$CG_NAME/docker
ExecReload=/bin/kill -s HUP \$MAINPID
StandardOutput=append:$T/logs/docker.log
StandardError=inherit
EOF

# A cgroup of its own, or a root user manager takes /app.slice/... of the whole machine.
for h in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    [ -e "$h/cgroup.procs" ] && mkdir "$h/$CG_NAME" && CGROUPS+=("$h/$CG_NAME/cgroup.procs")
done

echo "== sandbox $T"
t0=$(date +%s.%N)
# shellcheck disable=SC2016 # $1 and $0 are for the inner shell
unshare -m --propagation private /bin/sh -c \
    'for f in "$@"; do echo $$ >"$f"; done; mount --bind "$0" /run/systemd && exec /lib/systemd/systemd --user' \
    "$T/empty" "${CGROUPS[@]}" >"$T/systemd-user.log" 2>&1 </dev/null &
MANAGER_PID=$!
wait_until systemctl --user show -p Version || die "systemd --user did not come up (see $T/systemd-user.log)"
systemctl --user start dbus.socket dbus.service
wait_until busctl --address="$BUS" status org.freedesktop.systemd1 || die "user manager not on the bus"
printf 'user manager %s on the bus after %.2f s\n' "$MANAGER_PID" "$(echo "$(date +%s.%N) - $t0" | bc)"
t0=$(date +%s.%N)
systemctl --user start containerd.service docker.socket docker.service
wait_until curl -sf --unix-socket "$T/docker.sock" http://docker/_ping || die "dockerd does not answer"
printf 'dockerd %s answering after %.2f s\n' "$(systemctl --user show -p MainPID --value docker.service)" \
    "$(echo "$(date +%s.%N) - $t0" | bc)"

# ---- the agent ----------------------------------------------------------------
cat >"$T/agent.toml" <<EOF
[agent]
bus = "$BUS"
state_dir = "$T/state"
dropin_dir = "$T/incoming"
log_level = "debug"

[docker]
service = "docker.service"
socket_unit = "docker.socket"
socket = "$T/docker.sock"
stop_timeout_sec = 30
start_timeout_sec = 30
health_timeout_sec = 20
grace_sec = 1
monitor_interval_sec = 0
dockerinit_pairing = false

[[payload]]
name = "docker"
path = "$T/root/usr/bin/dockerd"
mode = 0o755
version_args = ["-v"]
engine = true

[[payload]]
name = "dockerinit"
path = "$T/root/usr/lib/docker/dockerinit"
mode = 0o755
EOF
cat >"$U/armdock-agent.service" <<EOF
[Service]
Type=notify
ExecStart=$AGENT --config $T/agent.toml
ExecReload=/bin/kill -HUP \$MAINPID
Environment=DBUS_SESSION_BUS_ADDRESS=$BUS
TimeoutStartSec=30
# No journald here: without INVOCATION_ID the agent logs to stdout (the log file).
UnsetEnvironment=INVOCATION_ID
StandardOutput=append:$T/logs/armdock-agent.log
StandardError=inherit
EOF
systemctl --user daemon-reload
if ! systemctl --user start armdock-agent.service; then
    tail -n 30 "$T/logs/armdock-agent.log" >&2
    die "the agent did not start"
fi
echo "agent $(systemctl --user show -p MainPID --value armdock-agent.service) on the bus as io.armdock.Agent1"

OBJ=(io.armdock.Agent1 /io/armdock/Agent1 io.armdock.Agent1)
prop() {  # prints a property's value without its type
    busctl --address="$BUS" get-property "${OBJ[@]}" "$1" |
        sed -E -e 's/^[^ ]+ //; s/^"(.*)"$/\1/' -e "s/\\\\'/'/g"  # drop the type, the quotes, busctl's \' escapes
}

# armdockctl upgrade, as an operator runs it: its progress lines, then its
# exit code (0 success; rolled-back and failed have their own, armdockctl(1)).
# Then what is installed.
upgrade() {
    local code=0
    "$CTL" --bus "$BUS" upgrade --docker "$1" || code=$?
    echo "  armdockctl exited $code"
    echo "  installed engine sha256 $(sha256sum "$T/root/usr/bin/dockerd" | cut -c1-16)…," \
         "ping: $(curl -s --max-time 5 --unix-socket "$T/docker.sock" http://docker/_ping || echo none)"
    return 0
}

echo "  before: engine sha256 $(sha256sum "$T/root/usr/bin/dockerd" | cut -c1-16)… version $(prop CurrentVersion)"

echo "== upgrade 1: a new engine (dockerd plus one byte, so it differs) — expect success"
install -m 0755 -o root -g root "$REAL_DOCKERD" "$T/new/dockerd"
printf '\0' >>"$T/new/dockerd"
upgrade "$T/new/dockerd"
[ "$(prop LastResult)" = success ] || echo "demo: expected success" >&2

echo "== upgrade 2: an engine that exits at once — expect rolled-back"
install -m 0755 -o root -g root "$BAD_ENGINE" "$T/new/engine_exits"
upgrade "$T/new/engine_exits"
[ "$(prop LastResult)" = rolled-back ] || echo "demo: expected rolled-back" >&2

echo "== status and backups"
"$CTL" --bus "$BUS" --docker-socket "$T/docker.sock" status || true
"$CTL" --bus "$BUS" backups || true
echo "== done"
