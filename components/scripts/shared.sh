#!/usr/bin/env bash
# shared.sh create — link the release's shared paths (Capistrano's linked_dirs/linked_files) so
# what the app writes outlives the release, and render shared files from stack config:
#   DIRS       release/<d> -> APP_ROOT/shared/<d>      (made by the app user; e.g. Flask's instance/)
#   FILES      plain: release/<f> -> APP_ROOT/shared/<f> (the app writes it)
#              rendered (content): APP_ROOT/files/<f>, root:<app> 0640, linked from the release or,
#              inside a shared dir, from shared/<f> (a link the app user makes)
# The agent's shared-files does what root does (the rendered files, the release's links and its
# manifest: root-owned folders only) and returns the steps inside shared/, which run here as the app
# user, so root never follows a path the app can write.
# Prints a revision that changes when a rendered file does (the activation then restarts the app).
# params: APP, RELEASE_ID, DIRS (JSON list), FILES (JSON list of {path, content|null}; secret)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock
revision=$(agent shared-files --field revision <<<"$P_RAW") || exit 1
steps() { agent shared-steps --field "$1" <<<"$P_RAW"; }
as_app() { run_as_app "$APP_USER" "$@" </dev/null; }
# each step is "<kind> <path>", the path checked by the agent (no space, no '..')
while read -r kind f; do
  case $kind in
    "") ;;   # no shared paths
    mkdir) as_app mkdir -p -m 0770 "$APP_ROOT/shared/$f" || fail "could not create shared/$f as $APP_USER" ;;
    touch) as_app mkdir -p -m 0770 "$(dirname "$APP_ROOT/shared/$f")"
      as_app touch "$APP_ROOT/shared/$f" || fail "could not create shared/$f as $APP_USER" ;;
    link) as_app mkdir -p -m 0770 "$(dirname "$APP_ROOT/shared/$f")"
      as_app ln -sfn "$APP_ROOT/files/$f" "$APP_ROOT/shared/$f" || fail "could not link shared/$f as $APP_USER" ;;
    *) fail "unknown shared step '$kind'" ;;
  esac
done < <(steps steps)
echo "shared paths of $P_RELEASE_ID: $(steps summary)"
if [ -n "$revision" ]; then echo "shared revision: $revision"; else echo "shared files unchanged"; fi
