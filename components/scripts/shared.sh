#!/usr/bin/env bash
# shared.sh create — link the release's shared paths (Capistrano's linked_dirs/linked_files) so
# what the app writes outlives the release, and render shared files from stack config:
#   DIRS       release/<d> -> APP_ROOT/shared/<d>      (made by the app user; e.g. Flask's instance/)
#   FILES      plain: release/<f> -> APP_ROOT/shared/<f> (the app writes it)
#              rendered (content): APP_ROOT/files/<f>, root:<app> 0640, linked from the release or,
#              inside a shared dir, from shared/<f> (a link the app user makes)
# Root writes only into root-owned folders (the release, APP_ROOT/files); everything inside shared/
# is done as the app user, so root never follows a path the app can write.
# Prints a revision that changes when a rendered file does (the activation then restarts the app).
# params: APP, RELEASE_ID, DIRS (JSON list), FILES (JSON list of {path, content|null}; secret)
. "$(dirname "$0")/lib.sh"
load_params
[[ $P_RELEASE_ID =~ ^[0-9a-f]{12}$ ]] || fail "bad release id '$P_RELEASE_ID'"
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock
release=$APP_ROOT/releases/$P_RELEASE_ID
[ -f "$release/.fdeploy-release.json" ] || fail "release $P_RELEASE_ID is not installed"
files=$APP_ROOT/files

as_app() { run_as_app "$APP_USER" "$@"; }
# path_ok P: relative, no '..' or dot-components (also checked in config.ts)
path_ok() { [[ $1 =~ ^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$ ]] || fail "bad shared path '$1'"; }
# release_link P TARGET: release/P -> TARGET; refuses to replace a shipped file or folder
release_link() {
  local link=$release/$1
  if [ -e "$link" ] && [ ! -L "$link" ]; then fail "the release ships '$1'; a shared path cannot replace it (remove it from appDir)"; fi
  # its folder must lie in the release itself, never through a link into shared/ (config.ts refuses
  # such paths; this is the server's own check before root creates anything there)
  local real; real=$(realpath "$release")
  case $(realpath -m "$(dirname "$link")") in "$real" | "$real"/*) ;; *) fail "'$1' is not inside the release" ;; esac
  install -d -m 0755 "$(dirname "$link")"
  [ "$(readlink "$link" 2>/dev/null)" = "$2" ] || atomic_symlink "$2" "$link"
  echo "$1" >>"$manifest.new"
}
manifest=$release/.fdeploy-shared
: >"$manifest.new"

mapfile -d '' -t dirs < <(printf '%s' "$P_DIRS" | python3 -c 'import json,sys; sys.stdout.write("".join(d + "\0" for d in json.load(sys.stdin)))')
for d in "${dirs[@]}"; do
  path_ok "$d"
  as_app mkdir -p -m 0770 "$APP_ROOT/shared/$d" || fail "could not create shared/$d as $APP_USER"
  release_link "$d" "$APP_ROOT/shared/$d"
done

# rendered files: written by root into the root-owned APP_ROOT/files (0750 root:<app>)
root_dir "$files" 0750; chgrp "$APP_USER" "$files"
changed=$(printf '%s' "$P_FILES" | python3 -c '
import json, os, re, sys, tempfile
root, group = sys.argv[1], sys.argv[2]
import grp; gid = grp.getgrnam(group).gr_gid
ok = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
changed, keep = 0, set()
for f in json.load(sys.stdin):
    p, content = f["path"], f.get("content")
    if not ok.fullmatch(p): sys.exit("bad shared file path %r" % p)
    if content is None: continue
    keep.add(p)
    dest = os.path.join(root, p)
    d = root
    for part in p.split("/")[:-1]:   # root-owned folders only (root is the only writer here)
        d = os.path.join(d, part)
        if not os.path.isdir(d) or os.path.islink(d): os.mkdir(d, 0o750)
        os.chown(d, 0, gid); os.chmod(d, 0o750)
    data = content.encode()
    try:
        with open(dest, "rb") as fh: same = fh.read() == data
    except FileNotFoundError: same = False
    if not same:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest))
        with os.fdopen(fd, "wb") as fh: fh.write(data)
        os.chown(tmp, 0, gid); os.chmod(tmp, 0o640); os.replace(tmp, dest); changed = 1
    os.chown(dest, 0, gid); os.chmod(dest, 0o640)
for d, _, names in os.walk(root):   # files no longer configured
    for n in names:
        rel = os.path.relpath(os.path.join(d, n), root)
        if rel not in keep: os.unlink(os.path.join(d, n)); changed = 1
print(changed)' "$files" "$APP_USER")

mapfile -d '' -t entries < <(printf '%s' "$P_FILES" | python3 -c '
import json, sys
for f in json.load(sys.stdin): sys.stdout.write(f["path"] + "\0" + ("rendered" if f.get("content") is not None else "plain") + "\0")')
for ((i = 0; i < ${#entries[@]}; i += 2)); do
  f=${entries[i]} kind=${entries[i + 1]} inside=""
  path_ok "$f"
  for d in "${dirs[@]}"; do [[ $f == "$d"/* ]] && inside=$d; done
  if [ -n "$inside" ]; then   # inside a shared dir: the app user links shared/<f> to the rendered file
    [ "$kind" = rendered ] || continue
    as_app mkdir -p -m 0770 "$(dirname "$APP_ROOT/shared/$f")"
    as_app ln -sfn "$files/$f" "$APP_ROOT/shared/$f" || fail "could not link shared/$f as $APP_USER"
  elif [ "$kind" = rendered ]; then
    release_link "$f" "$files/$f"
  else                        # a plain shared file: the app user owns it in shared/
    as_app mkdir -p -m 0770 "$(dirname "$APP_ROOT/shared/$f")"
    as_app touch "$APP_ROOT/shared/$f" || fail "could not create shared/$f as $APP_USER"
    release_link "$f" "$APP_ROOT/shared/$f"
  fi
done
# links this step made earlier in this release but no longer configured go (only links)
if [ -f "$manifest" ]; then
  while IFS= read -r old; do
    grep -qxF "$old" "$manifest.new" || { [ -L "$release/$old" ] && rm -f "$release/$old"; }
  done <"$manifest"
fi
mv -f "$manifest.new" "$manifest"
echo "shared paths of $P_RELEASE_ID: ${#dirs[@]} dirs, $((${#entries[@]} / 2)) files"
if [ "$changed" = 1 ]; then echo "shared revision: $(date -u +%s%N)"; else echo "shared files unchanged"; fi
