#!/usr/bin/env bash
# toolchain/ci-tools.sh — the local CI runners the tests of examples/ci/ use (tests only; users' CI
# runs the workflows on GitHub, Gitea/Forgejo or GitLab):
#   actionlint v1.7.12  lints a GitHub Actions workflow offline   (github.com/rhysd/actionlint)
#   act v0.2.89         runs a GitHub Actions workflow locally    (github.com/nektos/act)
#   gitlab-ci-local     runs a .gitlab-ci.yml locally             (npm; its version and every
#                       dependency pinned by toolchain/gitlab-ci-local/package-lock.json)
# the Go tools built from the Go module proxy with `go install pkg@version` (each module's own go.sum
# pins its dependencies), gitlab-ci-local installed by `npm ci` from its lockfile, into
# $FDEPLOY_CACHE/ci-tools/<name>/<version>/<name> (outside git), once per version; a warm run takes
# milliseconds. `ci-tools.sh path NAME` prints a tool's path (building it if needed).
set -euo pipefail
FDEPLOY_CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
HERE=$(cd "$(dirname "$0")" && pwd)
declare -A PKG=([actionlint]=github.com/rhysd/actionlint/cmd/actionlint [act]=github.com/nektos/act [gitlab-ci-local]=npm)
# gitlab-ci-local: 4.70.1 runs on Node.js 20 (4.75.1 does not); the version dir also names the lockfile's hash
GCL_LOCK=$HERE/gitlab-ci-local/package-lock.json
declare -A VERSION=([actionlint]=v1.7.12 [act]=v0.2.89
  [gitlab-ci-local]=4.70.1-$(sha256sum "$GCL_LOCK" | cut -c1-12))
TOOLS=(actionlint act gitlab-ci-local)

# build NAME: its binary in the cache (quiet when present; progress on stderr)
build() {
  local name=$1 out=$FDEPLOY_CACHE/ci-tools/$1/${VERSION[$1]}
  [ -x "$out/$name" ] && return 0
  [ "${PKG[$name]}" = npm ] && { npm_install "$name" "$out"; return; }
  command -v go >/dev/null || { echo "Go is needed to build $name (apt-get install golang-go, or go.dev)" >&2; return 1; }
  echo "$name ${VERSION[$name]}: building from the Go module proxy" >&2
  mkdir -p "$out"
  local tmp; tmp=$(mktemp -d "$out.build.XXXXXX")
  # module mode outside any go.mod: the tool's own go.mod/go.sum decide its dependencies
  if ! (cd "$tmp" && GOBIN=$tmp GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
        go install -trimpath -ldflags "-s -w" "${PKG[$name]}@${VERSION[$name]}"); then
    rm -rf "$tmp"; return 1
  fi
  # by rename: a concurrent run never sees half a file
  install -m 0755 "$tmp/$name" "$out/.$name.tmp.$$" && mv -f "$out/.$name.tmp.$$" "$out/$name"
  rm -rf "$tmp"
}

# npm_install NAME OUT: `npm ci` of toolchain/NAME/ (package.json + lockfile) into OUT, OUT/NAME its command
npm_install() {
  local name=$1 out=$2
  echo "$name ${VERSION[$name]}: npm ci from toolchain/$name/package-lock.json" >&2
  mkdir -p "$(dirname "$out")"
  local tmp; tmp=$(mktemp -d "$out.build.XXXXXX")
  cp "$HERE/$name/package.json" "$HERE/$name/package-lock.json" "$tmp/"
  if ! (cd "$tmp" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >&2); then
    rm -rf "$tmp"; return 1
  fi
  ln -s "node_modules/.bin/$name" "$tmp/$name"
  # the whole folder by rename: a concurrent run never sees half of it (the loser's copy is dropped)
  mv -T "$tmp" "$out" 2>/dev/null || rm -rf "$tmp"
}

if [ "${1:-}" = path ]; then
  name=${2:-}
  [ -n "${PKG[$name]:-}" ] || { echo "usage: ci-tools.sh path actionlint|act|gitlab-ci-local" >&2; exit 2; }
  build "$name"
  echo "$FDEPLOY_CACHE/ci-tools/$name/${VERSION[$name]}/$name"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: ci-tools.sh [path actionlint|act|gitlab-ci-local]" >&2; exit 2; }
for name in "${TOOLS[@]}"; do
  build "$name"
  echo "$name ${VERSION[$name]}: ready ($FDEPLOY_CACHE/ci-tools/$name/${VERSION[$name]}/$name)"
done
