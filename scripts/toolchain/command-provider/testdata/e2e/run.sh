#!/bin/bash
# End-to-end check of the provider with the real Pulumi CLI and the unmodified @pulumi/command npm SDK:
# preview, up, no-op up, update, trigger replacement, refresh, state-secrets check, destroy.
# Needs the loopback sshd of ../ssh-test.sh:
#
#   scripts/toolchain/command-provider/testdata/ssh-test.sh --exec \
#       scripts/toolchain/command-provider/testdata/e2e/run.sh
#
# Env: PULUMI_BIN_DIR (pulumi + pulumi-language-nodejs; default /var/cache/fdeploy/bin), NODE_MODULES (a
# node_modules with @pulumi/pulumi and @pulumi/command; default /work/main/node_modules). Everything else
# (state, PULUMI_HOME, provider build) lives in a temporary directory that is removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
module=$(cd "$here/../../.." && pwd)
bindir=${PULUMI_BIN_DIR:-/var/cache/fdeploy/bin}
node_modules=${NODE_MODULES:-/work/main/node_modules}
work=$(mktemp -d /tmp/fdeploy-cmd-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT

(cd "$module" && CGO_ENABLED=0 go build -trimpath -o "$work/bin/pulumi-resource-command" ./command-provider)
mkdir -p "$work/prog/payload" "$work/state" "$work/remote"
cp "$here/index.js" "$work/prog/"
ln -s "$node_modules" "$work/prog/node_modules"
printf 'name: cmde2e\nruntime: nodejs\n' >"$work/prog/Pulumi.yaml"
echo '{"name": "cmde2e", "main": "index.js"}' >"$work/prog/package.json"
echo "hello from payload" >"$work/prog/payload/hello.txt"

cd "$work/prog"
export PATH=$bindir:$PATH PULUMI_HOME=$work/home PULUMI_BACKEND_URL=file://$work/state
export PULUMI_CONFIG_PASSPHRASE=e2e PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=true
pulumi plugin install resource command v1.2.1 --file "$work/bin/pulumi-resource-command" >/dev/null 2>&1
pulumi stack init dev --non-interactive >/dev/null 2>&1
pulumi config set round 1
pulumi config set trigger a
pulumi config set remoteDir "$work/remote"
pulumi config set --secret privateKey -- "$(cat "$FDEPLOY_SSH_KEY")"

summary() { grep -E '^ *([-+~]|\+-)? ?[0-9]+ (to create|to update|to replace|created|updated|replaced|unchanged|deleted)' || true; }
out() { pulumi stack output "$1" --show-secrets; }
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== preview"; pulumi preview --non-interactive | summary
[ ! -e "$work/remote/app" ] || fail "preview ran a command"
echo "== up"; pulumi up --yes --non-interactive | summary
[ "$(out remoteStdout)" = $'remote create tok-a\nhello from payload\nround=1' ] || fail "remoteStdout: $(out remoteStdout)"
[ "$(out localStdout)" = $'local create 1\nlocal-stdin-secret' ] || fail "localStdout: $(out localStdout)"
[ "$(out runStdout)" = "invoked" ] || fail "runStdout"
echo "== up (no changes)"; pulumi up --yes --non-interactive --expect-no-changes | summary
pulumi config set round 2
echo "== up (update)"; pulumi up --yes --non-interactive | summary
[ "$(out localStdout)" = $'local update 2 prev=[local create 1\nlocal-stdin-secret]' ] || fail "update: $(out localStdout)"
[ "$(cat "$work/remote/etc/app.conf")" = "round=2" ] || fail "CopyToRemote update"
pulumi config set trigger b
echo "== up (trigger => replace)"; pulumi up --yes --non-interactive | summary
[ "$(out remoteStdout)" = $'remote create tok-b\nhello from payload\nround=2' ] || fail "replace: $(out remoteStdout)"
grep -q 'remote delete prev=\[remote create tok-a' "$work/remote/remote-delete.log" || fail "replaced resource's delete did not run"
echo "== refresh"; pulumi refresh --yes --non-interactive --expect-no-changes | summary
echo "== state"
pulumi stack export >"$work/export.json"
python3 - "$work/export.json" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
d = json.loads(raw)
assert 'BEGIN OPENSSH' not in raw, 'private key leaked into state'
SIG = '4dabf18193072939515e22adb298388d'
def is_secret(v): return isinstance(v, dict) and v.get(SIG) == '1b47061264138c4ac30d75fd1eb44270'
for r in d['deployment']['resources']:
    if not r['type'].startswith('command:'):
        continue
    name = r['urn'].split('::')[-1]
    for part in ('inputs', 'outputs'):
        m = r.get(part, {})
        if 'remote' in r['type']:
            assert is_secret(m['connection']), (name, part, 'connection')
        if name == 'local':
            assert is_secret(m['stdin']), (name, part, 'stdin')
        if name == 'remote':
            assert is_secret(m['environment']['TOKEN']), (name, part, 'environment.TOKEN')
print('secret inputs are secret in inputs and outputs')
PY
echo "== destroy"; pulumi destroy --yes --non-interactive | summary
grep -q "local delete" "$work/remote/local-delete.log" || fail "local delete did not run"
[ "$(grep -c 'remote delete' "$work/remote/remote-delete.log")" = 2 ] || fail "remote delete count"
echo "E2E OK"
