#!/usr/bin/env bash
# Build the helogale image with no image registry:
#   1. a Debian base image (python3, venv, iproute2, iptables) made with debootstrap from the
#      machine's own Debian mirror, then `docker import` (skipped when it exists already);
#   2. the project's dependency wheels and the project wheel, built on the host (pip);
#   3. compose/Dockerfile: dependencies installed with pip --no-index (one cached layer),
#      the project as the last layer (a rebuild after a code change takes seconds).
# It also makes one cluster key per replica set in compose/keys/ (git-ignored), if missing.
#
# Environment: HELOGALE_IMAGE (helogale:latest), HELOGALE_BASE_IMAGE (helogale-base:<suite>;
# python:3.11-slim works where a registry is reachable), HELOGALE_SUITE / HELOGALE_MIRROR
# (default: read from /etc/apt/sources*), HELOGALE_REBUILD_BASE=1 to remake the base.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
image="${HELOGALE_IMAGE:-helogale:latest}"
py="${PYTHON:-python3}"
say() { echo "build-images: $*" >&2; }

apt_mirror() {  # the first Debian mirror of the machine's apt sources (deb822 or one-line)
  local f line
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    line="$(awk '/^URIs:/ {print $2}' "$f" | grep -v -- '-security' | head -n1)"
    [ -n "$line" ] && { echo "$line"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    line="$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' "$f")"
    [ -n "$line" ] && { echo "$line"; return; }
  done
  echo "http://deb.debian.org/debian"
}

suite="${HELOGALE_SUITE:-$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-bookworm}")}"
base="${HELOGALE_BASE_IMAGE:-helogale-base:$suite}"

# 1. the base image
if [ "${HELOGALE_REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$base" >/dev/null 2>&1; then
  case "$base" in
    helogale-base:*)
      command -v debootstrap >/dev/null || {
        say "installing debootstrap"; apt-get install -y -q debootstrap >/dev/null; }
      mirror="${HELOGALE_MIRROR:-$(apt_mirror)}"
      rootfs="$(mktemp -d /tmp/helogale-rootfs.XXXXXX)"
      trap 'rm -rf "$rootfs"' EXIT
      say "debootstrap $suite from $mirror (about a minute)"
      started=$SECONDS
      debootstrap --variant=minbase \
        --include=python3,python3-venv,iproute2,iptables,ca-certificates \
        "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; exit 1; }
      rm -f "$rootfs.log"
      chroot "$rootfs" apt-get clean
      rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
      old="$(docker image inspect -f '{{.Id}}' "$base" 2>/dev/null || true)"
      tar -C "$rootfs" -c . | docker import \
        -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
      [ -n "$old" ] && docker rmi "$old" >/dev/null 2>&1 || true
      rm -rf "$rootfs"; trap - EXIT
      say "base image $base made in $((SECONDS - started)) s"
      ;;
    *) say "using base image $base as it is (pulled or made elsewhere)";;
  esac
fi

# cluster keys, one per replica set (a stream from another set's member fails authentication)
mkdir -p "$here/keys"
for set in cfg shard1 shard2 ${HELOGALE_EXTRA_SETS:-}; do
  key="$here/keys/$set.key"
  if [ ! -s "$key" ]; then
    (umask 077; "$py" -c 'import base64, os; print(base64.b64encode(os.urandom(96)).decode())' >"$key")
  fi
  chmod 600 "$key"
done

# the image is up to date when it was built from these very sources on this base
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  source_hash="$(cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read --sort=name --mtime=@0 --owner=0 --group=0 \
          -cf - -T - 2>/dev/null | sha256sum | cut -c1-16)-$(docker image inspect -f '{{.Id}}' "$base" | cut -c8-19)"
  built="$(docker image inspect -f '{{index .Config.Labels "org.helogale.source"}}' "$image" 2>/dev/null || true)"
  if [ "${HELOGALE_FORCE_BUILD:-0}" != 1 ] && [ "$built" = "$source_hash" ]; then
    say "image $image is up to date (sources $source_hash)"
    exit 0
  fi
else
  source_hash=unknown
fi

# 2. wheels, on the host: dependencies for CPython 3.11 on this architecture, and the project
ctx="$here/.build"
mkdir -p "$ctx/deps" "$ctx/app"
rm -f "$ctx/app/"*.whl
"$py" - "$root/pyproject.toml" >"$ctx/deps/requirements.new" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
if ! cmp -s "$ctx/deps/requirements.new" "$ctx/deps/requirements.txt" \
    || ! ls "$ctx/deps/"*.whl >/dev/null 2>&1; then
  say "downloading dependency wheels (CPython 3.11, $(uname -m))"
  rm -f "$ctx/deps/"*.whl
  arch="$(uname -m)"
  "$py" -m pip download -q --only-binary=:all: --implementation cp --python-version 3.11 \
    --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" \
    --platform "manylinux_2_28_$arch" --platform "manylinux_2_34_$arch" \
    -d "$ctx/deps" -r "$ctx/deps/requirements.new"
fi
mv "$ctx/deps/requirements.new" "$ctx/deps/requirements.txt"
build_tmp="$(mktemp -d /tmp/helogale-wheel.XXXXXX)"
# build from a copy so the checkout gets no build/ or egg-info litter
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
     | tar --null --ignore-failed-read -cf - -T - 2>/dev/null) | tar -xf - -C "$build_tmp"
else
  cp -r "$root/." "$build_tmp/"
fi
rm -rf "$build_tmp/compose/.build" "$build_tmp/compose/keys"
# (without build isolation when setuptools and wheel are at hand: no download, faster)
if "$py" -c 'import setuptools, wheel' 2>/dev/null; then isolation=--no-build-isolation; else isolation=; fi
"$py" -m pip wheel -q --no-deps $isolation -w "$ctx/app" "$build_tmp" >/dev/null
rm -rf "$build_tmp"

# 3. the image; an untagged image it replaces is removed
old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
# (the classic builder: no buildx plugin needed; its deprecation notice is dropped)
if ! out="$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -t "$image" \
              --label "org.helogale.source=$source_hash" \
              -f "$here/Dockerfile" "$here" 2>&1)"; then
  echo "$out" >&2; exit 1
fi
new="$(docker image inspect -f '{{.Id}}' "$image")"
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  docker rmi "$old" >/dev/null 2>&1 || true   # kept while a container still uses it
fi

say "image $image ready ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
