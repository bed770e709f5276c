#!/usr/bin/env bash
# toolchain/ci-tools.sh — the local CI runners the tests of examples/ci/ use (tests only; users' CI
# runs the workflows on GitHub, Gitea/Forgejo or GitLab):
#   actionlint v1.7.12  lints a GitHub Actions workflow offline   (github.com/rhysd/actionlint)
#   act v0.2.89         runs a GitHub Actions workflow locally    (github.com/nektos/act)
# built from the Go module proxy with `go install pkg@version` (each module's own go.sum pins its
# dependencies) into $FDEPLOY_CACHE/ci-tools/<name>/<version>/<name> (outside git), once per version;
# a warm run takes milliseconds. `ci-tools.sh path NAME` prints a tool's path (building it if needed).
set -euo pipefail
FDEPLOY_CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
declare -A PKG=([actionlint]=github.com/rhysd/actionlint/cmd/actionlint [act]=github.com/nektos/act)
declare -A VERSION=([actionlint]=v1.7.12 [act]=v0.2.89)

# build NAME: its binary in the cache (quiet when present; progress on stderr)
build() {
  local name=$1 out=$FDEPLOY_CACHE/ci-tools/$1/${VERSION[$1]}
  [ -x "$out/$name" ] && return 0
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

if [ "${1:-}" = path ]; then
  name=${2:-}
  [ -n "${PKG[$name]:-}" ] || { echo "usage: ci-tools.sh path actionlint|act" >&2; exit 2; }
  build "$name"
  echo "$FDEPLOY_CACHE/ci-tools/$name/${VERSION[$name]}/$name"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: ci-tools.sh [path actionlint|act]" >&2; exit 2; }
for name in actionlint act; do
  build "$name"
  echo "$name ${VERSION[$name]}: ready ($FDEPLOY_CACHE/ci-tools/$name/${VERSION[$name]}/$name)"
done
