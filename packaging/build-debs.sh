#!/usr/bin/env bash
# Builds the Debian packages armdock-agent_VERSION_amd64.deb (native) and
# armdock-agent_VERSION_arm64.deb (cross-built with Debian's aarch64 cross
# toolchain and the :arm64 -dev packages), then runs lintian on each.
#
#   packaging/build-debs.sh              # both
#   packaging/build-debs.sh arm64        # one of them
#
# Run as root on Debian 12: it installs what it needs (debhelper, lintian,
# crossbuild-essential-arm64, the build dependencies of both architectures,
# after `dpkg --add-architecture arm64`).
# Packages land in $ARMDOCK_DEB_OUT (default: build-deb/ in the repository);
# the build trees live under $ARMDOCK_CACHE (default /var/cache/armdock-build).
# Exit status: non-zero when a build fails or lintian reports an error or a
# warning that is not overridden in packaging/debian/armdock-agent.lintian-overrides.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${ARMDOCK_DEB_OUT:-$repo/build-deb}
cache=${ARMDOCK_CACHE:-/var/cache/armdock-build}
archs=("$@")
((${#archs[@]})) || archs=(amd64 arm64)
native=$(dpkg --print-architecture)

log() { printf '== %s\n' "$*"; }
die() { printf 'build-debs: %s\n' "$*" >&2; exit 1; }

for a in "${archs[@]}"; do
  [[ $a == amd64 || $a == arm64 ]] || die "unknown architecture '$a' (amd64 or arm64)"
done
[[ $native == amd64 ]] || die "this script cross-builds from amd64; this machine is $native"

# The version comes from meson.build; debian/changelog must say the same.
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$repo/meson.build" | head -n1)
[[ -n $version ]] || die "no project version found in meson.build"
changelog_version=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
[[ $changelog_version == "$version" ]] ||
  die "packaging/debian/changelog says $changelog_version but meson.build says $version: add a changelog entry for $version"

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends --no-remove "$@"
}

# A copy of the source tree (tracked and new files, nothing git ignores) with
# packaging/debian as debian/: dpkg-buildpackage wants debian/ at the top.
prepare_source() {
  local dest=$1
  rm -rf "$dest"
  mkdir -p "$dest"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
    tar -C "$repo" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$dest" -xf -
  rm -rf "$dest/debian"
  cp -a "$repo/packaging/debian" "$dest/debian"
}

setup() {
  local need_arm64=0 a
  for a in "${archs[@]}"; do [[ $a == arm64 ]] && need_arm64=1; done
  if ((need_arm64)) && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    rm -f "$cache/.apt-updated"
  fi
  mkdir -p "$cache"
  # One `apt-get update` a day is plenty for a snapshot-pinned mirror.
  if [[ ! -f $cache/.apt-updated ]] || [[ -n $(find "$cache/.apt-updated" -mmin +1440) ]]; then
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=900 update -q
    touch "$cache/.apt-updated"
  fi
  log "installing the packaging tools"
  apt_install build-essential debhelper dpkg-dev fakeroot lintian git
  ((need_arm64)) && apt_install crossbuild-essential-arm64
  local src=$cache/src-deps
  prepare_source "$src"
  for a in "${archs[@]}"; do
    log "installing the build dependencies for $a"
    if [[ $a == "$native" ]]; then
      (cd "$src" && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 build-dep -y -q \
        --no-install-recommends --no-remove ./)
    else
      (cd "$src" && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 build-dep -y -q \
        --no-install-recommends --no-remove -a "$a" ./)
    fi
  done
}

build() {
  local arch=$1 work=$cache/build-$1 start
  start=$(date +%s)
  prepare_source "$work/armdock-agent-$version"
  rm -f "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo
  log "dpkg-buildpackage for $arch in $work"
  # The package configures with -Dtests=false (debian/rules), so there is no
  # test to run either way; a cross build also says nocheck, as dh asks of
  # cross builds that cannot run the host's binaries.
  local -a aflag=()
  local opts="parallel=${ARMDOCK_JOBS:-2} ${DEB_BUILD_OPTIONS:-}"
  [[ $arch == "$native" ]] || { aflag=(-a "$arch" -Pcross,nocheck); opts="$opts nocheck"; }
  (cd "$work/armdock-agent-$version" &&
    DEB_BUILD_OPTIONS="$opts" \
      dpkg-buildpackage -us -uc -b "${aflag[@]}") >"$work/build.log" 2>&1 ||
    { tail -n 60 "$work/build.log"; die "the $arch build failed; whole log: $work/build.log"; }
  mkdir -p "$out"
  rm -f "$out"/armdock-agent*_"$arch".deb "$out"/armdock-agent_*_"$arch".changes "$out"/armdock-agent_*_"$arch".buildinfo
  cp "$work"/armdock-agent*_"$arch".deb "$work"/armdock-agent_*_"$arch".changes "$work"/armdock-agent_*_"$arch".buildinfo "$out/"
  log "$arch built in $(($(date +%s) - start)) s: $(cd "$out" && ls -s --block-size=K armdock-agent*_"$arch".deb | tr '\n' ' ')"
}

lint() {
  local arch=$1 deb=$out/armdock-agent_${version}_$1.deb report
  report=$out/lintian-$arch.txt
  log "lintian $deb"
  # --fail-on error,warning: a warning that is not fixed must be overridden,
  # with its reason, in debian/armdock-agent.lintian-overrides.
  # With --show-overrides, lintian 2.116 also fails on the overridden tags it
  # shows (O:), so the verdict comes from the E: and W: lines it prints; any
  # exit status beyond 0 and 2 (tags found) is lintian itself failing.
  local status=0 errors warnings
  lintian --fail-on error,warning --display-info --show-overrides "$deb" >"$report" 2>&1 || status=$?
  cat "$report"
  errors=$(grep -c '^E: ' "$report" || true)
  warnings=$(grep -c '^W: ' "$report" || true)
  printf '== lintian %s: %s errors, %s warnings, %s overridden\n' "$arch" \
    "$errors" "$warnings" "$(grep -c '^O: ' "$report" || true)"
  ((status == 0 || status == 2)) || { echo "lintian itself failed (exit $status)"; return 1; }
  ((errors == 0 && warnings == 0))
}

if [[ ${ARMDOCK_SKIP_SETUP:-0} != 1 ]]; then
  setup
fi
failed=0
for a in "${archs[@]}"; do
  build "$a"
  lint "$a" || failed=1
done
ls -l "$out"/armdock-agent*.deb
((failed == 0)) || die "lintian found errors or warnings that are neither fixed nor overridden (see above)"
log "done: packages in $out"
