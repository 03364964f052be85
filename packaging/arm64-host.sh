# shellcheck shell=bash
# Shared by the arm64 scripts of packaging/ (sourced, not run): the build
# machine's side of running aarch64 programs through qemu-user-static and
# binfmt_misc, the Debian mirror, and the checks' step lines.

# ---------------------------------------------------------------- steps
# step NAME COMMAND...: runs it with its output in $logdir/step-N.log, prints
# "ok"/"FAIL" and its time, and on failure the end of its output.
# Needs $logdir; counts in $step_no and $failures, its time in $step_seconds.
step_no=0 failures=0 step_seconds=0
step() {
  local name=$1 t0 t1 rc=0
  shift
  step_no=$((step_no + 1))
  t0=$(date +%s.%N)
  "$@" >"$logdir/step-$step_no.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  step_seconds=$(elapsed "$t0" "$t1")
  if ((rc == 0)); then
    printf '[%2d] %-62s ok    %7s s\n' "$step_no" "$name" "$step_seconds"
  else
    failures=$((failures + 1))
    printf '[%2d] %-62s FAIL  %7s s (exit %d)\n' "$step_no" "$name" "$(elapsed "$t0" "$t1")" "$rc"
    tail -n 25 "$logdir/step-$step_no.log" | sed 's/^/       | /'
  fi
  return $rc
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# note TEXT: a result line under the step before it.
note() { printf '       %s\n' "$*" | sed 's/\x1b\[[0-9;]*m//g'; } # without colour codes

# ---------------------------------------------------------------- host packages
# host_packages PACKAGE...: installs those that are not installed yet.
host_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && { echo "all present: $*"; return 0; }
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends --no-remove "${missing[@]}"
}

# ---------------------------------------------------------------- binfmt_misc
# binfmt_qemu_register: mounts binfmt_misc when it is not, and registers
# qemu-aarch64 from qemu-user-static's binfmt.d file with the F flag (the
# interpreter is opened now, so a chroot or container needs no copy of it).
# What it did is undone by binfmt_qemu_cleanup; an entry that was there
# before is left as it was.
binfmt_qemu_entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
binfmt_qemu_added=0 binfmt_qemu_mounted=0
# binfmt_mount: binfmt_misc mounted (and unmounted by binfmt_qemu_cleanup
# if it was mounted here).
binfmt_mount() {
  if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || { echo "cannot mount binfmt_misc"; return 1; }
    binfmt_qemu_mounted=1
    echo "mounted binfmt_misc"
  fi
}
binfmt_qemu_register() {
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf line
  binfmt_mount || return 1
  if [[ -e $binfmt_qemu_entry ]]; then
    grep -q '^enabled' "$binfmt_qemu_entry" || { echo "$binfmt_qemu_entry is registered but disabled"; return 1; }
    echo "qemu-aarch64 already registered: $(grep -E '^(interpreter|flags)' "$binfmt_qemu_entry" | tr '\n' ' ')"
    return 0
  fi
  [[ -f $conf ]] || { echo "no $conf: is qemu-user-static installed?"; return 1; }
  line=$(grep -v '^#' "$conf" | head -n1)
  [[ ${line##*:} == *F* ]] || line="${line}F" # the flags are the last field
  printf '%s' "$line" >/proc/sys/fs/binfmt_misc/register || { echo "cannot register qemu-aarch64"; return 1; }
  binfmt_qemu_added=1
  echo "registered from $conf: $(grep -E '^(interpreter|flags)' "$binfmt_qemu_entry" | tr '\n' ' ')"
}
binfmt_qemu_cleanup() {
  if ((binfmt_qemu_added)) && [[ -e $binfmt_qemu_entry ]]; then
    echo -1 >"$binfmt_qemu_entry" && echo "qemu-aarch64 unregistered from binfmt_misc"
  fi
  binfmt_qemu_added=0
  if ((binfmt_qemu_mounted)); then umount /proc/sys/fs/binfmt_misc || true; fi
  binfmt_qemu_mounted=0
}

# ---------------------------------------------------------------- mirror
# debian_mirror SUITE: the Debian mirror this machine's apt uses for SUITE,
# else deb.debian.org.
debian_mirror() {
  local s=$1 m=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    m=$(awk -v s="$s" '
      /^Types:/ { t = 0; for (i = 2; i <= NF; i++) if ($i == "deb") t = 1 }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) k = 1 }
      /^$/ { if (t && k && u != "") { print u; exit } t = 0; k = 0; u = "" }
      END { if (t && k && u != "") print u }' /etc/apt/sources.list.d/*.sources | head -n1)
  fi
  if [[ -z $m && -f /etc/apt/sources.list ]]; then
    m=$(awk -v s="$s" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) i = 3; if ($(i + 1) == s) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [[ -n $m ]] || m=http://deb.debian.org/debian
  echo "$m"
}
