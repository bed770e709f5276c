#!/usr/bin/env bash
# release.sh create — install an uploaded release: copy ~/.fdeploy/<app>/uploads/<id> to
# APP_ROOT/releases/<id> (root-owned), and link its .venv to the venv of its requirements, which the
# app's build user creates (`pip install -r requirements.txt`) unless another release has already.
# A release is content-addressed (its id is a hash of its files), so an installed one is never
# reinstalled; a half-installed one (crash, pip failure) has no marker and is redone from scratch.
# The live release is not touched: switching happens in activate.sh.
# With RUNTIME docker the release runs as an image (components/docker-image.ts): its folder holds
# the code (static files, sharedDirs) and no venv; a release installed that way and deployed later
# with the python runtime gets its venv then.
# params: APP, RELEASE_ID, PINNED (1: a rollback pinned this kept release; nothing is uploaded),
#         RUNTIME (python, the default, or docker)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
# the agent's release-plan (it checks the parameters): "installed" (nothing to do), "copy" the
# upload, or "venv" (a release the docker runtime installed gets its venv); a pinned release that
# is not kept, or a missing upload, is refused
action=$(agent release-plan --field action <<<"$P_RAW") || exit 1
if [ "$action" = installed ]; then echo "release $P_RELEASE_ID already installed"; exit 0; fi
src=$FDEPLOY_HOME/uploads/$P_RELEASE_ID
dest=$APP_ROOT/releases/$P_RELEASE_ID
marker=$dest/.fdeploy-release.json
runtime=${P_RUNTIME:-python}
with_deploy_lock
# another deploy of this app (another stack, or an interrupted run whose install finished) may have
# installed it while this one waited for the lock: never remove a release that may already be live
action=$(agent release-plan --field action <<<"$P_RAW") || exit 1
if [ "$action" = installed ]; then echo "release $P_RELEASE_ID already installed"; exit 0; fi

# whatever stops the install before the marker (pip, a full disk, an error below) removes the
# half-installed release, so it takes no space and is redone from scratch next time
failed=""
cleanup() {
  local status=$? avail where
  deploy_lock_released
  [ -f "$marker" ] && return
  rm -rf "$dest"
  if [ -n "${venv:-}" ] && [ ! -f "$venv/.fdeploy-built" ]; then rm -rf "$venv"; fi
  if [ "$status" != 0 ] && [ -z "$failed" ]; then
    read -r avail where < <(volume_free_kb) || true
    if [ -n "$avail" ] && [ "$avail" -lt 204800 ]; then
      log "error: installing release $P_RELEASE_ID failed: the release volume is nearly full ($((avail / 1024)) MiB free in $where); free space there and deploy again. The half-installed release was removed, the live release is unchanged"
    else
      log "error: installing release $P_RELEASE_ID failed (see above); the half-installed release was removed, the live release is unchanged"
    fi
  fi
}
volume_free_kb() { # "<KiB> <folder>": the fuller of the releases' and the venvs' volumes
  local d
  for d in "$APP_ROOT/releases" "$APP_ROOT/venvs"; do
    [ -d "$d" ] && df -Pk "$d" 2>/dev/null | awk -v d="$d" 'NR == 2 {print $4, d}'
  done | sort -n | head -n 1
}
trap cleanup EXIT
die() { failed=1; fail "$@"; }

started=$SECONDS
# the marker, written last (the agent's release-mark): without it the release is half-installed
mark() { agent release-mark --set-json INSTALL_SECONDS=$((SECONDS - started)) <<<"$P_RAW" >/dev/null; }
if [ "$action" = copy ]; then   # else: installed by the docker runtime; only the venv is missing
rm -rf "$dest"
cp -a "$src" "$dest"
rm -rf "$dest/.venv"
# the files must be exactly the release (its id is their hash, components/upload.ts): an upload cut
# short or overwritten meanwhile (e.g. by another stack uploading the same release) is not installed
got=$(agent release-hash --field hash <<<"$P_RAW")
[ "$got" = "$P_RELEASE_ID" ] || die "the upload of release $P_RELEASE_ID is incomplete or changed (its files hash to $got); run pulumi up again"
chown -R root:root "$dest"; chmod -R u+rwX,go+rX,go-w "$dest"
if [ "$runtime" = docker ]; then   # the image holds the venv (docker-image.ts)
  mark || die "could not write the marker of release $P_RELEASE_ID"
  echo "release $P_RELEASE_ID installed (runtime docker) in $((SECONDS - started))s"
  exit 0
fi
fi
# The venv is shared by every release with the same requirements — venvs/<hash of requirements.txt
# and the server's Python> — so a code-only change (or a rollback) installs nothing. It is built
# by the app's unprivileged build user (base.sh), never by root: pip runs every package's build
# code. The build runs in a sandboxed transient unit that can write only that venv, and every
# process it starts ends with it. The app user cannot write it, so a compromised app cannot plant
# code that later releases run; root never touches what the build user wrote except to delete it.
builder=$(build_user "$P_APP")
id -u "$builder" >/dev/null 2>&1 || die "the build user $builder is missing; deploy the base system again (base.sh create)"
# the agent's release-venv: venvs/<key>, whether it is built, and the seed (see below)
venvinfo() { agent release-venv --field "$1" <<<"$P_RAW"; }
venv=$(venvinfo venv) || die "could not choose the venv of release $P_RELEASE_ID"
pipvenv=$(venvinfo pipvenv) || exit 1
# as_builder WRITABLE <SCRIPT: sh reads SCRIPT (a constant of this file) on stdin, as the build
# user, in a sandboxed transient unit that can write only WRITABLE; $VENV, $PIPVENV and $SEED in it
# are the venvs. On stdin, not `sh -c`: systemd-run (>= 254) would expand every $word of a command
# line itself, unknown ones to nothing. SCRIPT is one { …; } </dev/null, so sh has read it whole
# before anything in it runs (and nothing in it reads the rest).
as_builder() {
  run_unit "fdeploy-$P_APP-build-$$-$RANDOM" \
    -p User="$builder" -p Group="$builder" -p WorkingDirectory="$dest" -p UMask=0022 \
    -p ProtectSystem=strict -p ReadWritePaths="$1" -p ProtectHome=yes -p PrivateTmp=yes \
    -p PrivateDevices=yes -p NoNewPrivileges=yes -p RestrictSUIDSGID=yes \
    -p Environment=HOME=/tmp -p Environment=PIP_NO_CACHE_DIR=1 -p Environment=PIP_DISABLE_PIP_VERSION_CHECK=1 \
    -p Environment=VENV="$venv" -p Environment=PIPVENV="$pipvenv" -p Environment=SEED="${seed:-}" \
    /bin/sh -s 2>&1
}
if [ "$(venvinfo built)" = True ]; then
  log "release $P_RELEASE_ID: the venv of these requirements is built already ($(basename "$venv")); nothing to install"
else
  install -d -m 0755 "$APP_ROOT/venvs"
  rm -rf "$venv"   # half built by an interrupted run: no marker
  install -d -m 0755 -o "$builder" -g "$builder" "$venv"
  # one pip per app (venvs/.pip, built once, read-only to every later build): new venvs are made
  # without pip of their own and installed into by that pip under their python — creating a venv
  # with pip (ensurepip) is ~6 s of a dependency change; without, 0.1 s. A pip older than 22.3 has
  # no runner (no --python): then each venv gets its own pip, as before.
  log "creating venv $(basename "$venv") and installing requirements for $P_RELEASE_ID (as $builder)"
  interrupted="the venv build of release $P_RELEASE_ID was interrupted before it finished (is the server shutting down?); run pulumi up again"
  out=""
  if [ "$(venvinfo pip_built)" != True ]; then
    install -d -m 0755 -o "$builder" -g "$builder" "$pipvenv"
    out=$(as_builder "$pipvenv" <<<'{ python3 -m venv --clear "$PIPVENV" && touch "$PIPVENV/.fdeploy-built"; } </dev/null') ||
      out="$out (building the app's pip in $pipvenv failed)"
  fi
  # the seed: the live release's venv, when the new requirements only add plain lines to its and the
  # Python is the same (the agent's release-venv): the new venv starts as a copy of its packages and
  # pip installs only what was added, so a dependency change costs about one package's install
  seed=$(venvinfo seed) || exit 1
  [ -z "$seed" ] || log "the requirements add to those of the live release: starting from a copy of its venv ($(basename "$seed"))"
  # In the unit: the app's pip runs under the new venv's python through pip's own runner script
  # (what `pip --python` starts after a first pip start of its own: 0.2 s saved; pip >= 22.3 has it).
  # A seed's files are copied as they are (their .pyc stay valid: cp -p keeps the sources' times),
  # its console scripts with their first line pointed at this venv's python.
  if ! out+=$(as_builder "$venv" <<'BUILD'
    { set -e
      runner=$(ls -d "$PIPVENV"/lib/python3*/site-packages/pip/__pip-runner__.py 2>/dev/null | head -n 1)
      if [ -f "$PIPVENV/.fdeploy-built" ] && [ -n "$runner" ]; then
        python3 -m venv --without-pip "$VENV"
        if [ -n "$SEED" ]; then
          cp -Rp "$SEED"/lib/python3*/site-packages/. "$(ls -d "$VENV"/lib/python3*/site-packages)/"
          for f in "$SEED"/bin/*; do
            n="$VENV/bin/${f##*/}"
            if [ -e "$n" ] || [ -L "$n" ] || [ -L "$f" ]; then continue; fi
            case "$(head -n 1 "$f")" in
              "#!$SEED/bin/"*) sed "1s|^#!$SEED/bin/|#!$VENV/bin/|" "$f" >"$n"; chmod 0755 "$n" ;;
              *) cp -p "$f" "$n" ;;
            esac
          done
        fi
        "$VENV/bin/python" "$runner" install -q -r requirements.txt
      else
        python3 -m venv "$VENV"; "$VENV/bin/pip" install -q -r requirements.txt
      fi
      touch "$VENV/.fdeploy-built"
    } </dev/null
BUILD
  ); then
    printf '%s\n' "$out" | tail -n 20 >&2
    read -r avail _ < <(volume_free_kb) || true
    [ -n "$avail" ] && [ "$avail" -lt 204800 ] && exit 1   # the cleanup names the full volume
    # pip killed by a shutdown fails too (seen in a full run): not an error of the requirements
    shutting_down && die "$interrupted"
    die "pip install -r requirements.txt failed for release $P_RELEASE_ID; the live release is unchanged"
  fi
  # a build unit stopped from outside (a shutdown) can end "successfully" without finishing
  [ -f "$venv/.fdeploy-built" ] || die "$interrupted"
fi
ln -sfn "$venv" "$dest/.venv"
[ -x "$dest/.venv/bin/gunicorn" ] || die "gunicorn is not installed by requirements.txt (add gunicorn to it)"
mark || die "could not write the marker of release $P_RELEASE_ID"
echo "release $P_RELEASE_ID installed in $((SECONDS - started))s"
