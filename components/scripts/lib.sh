# shellcheck shell=bash disable=SC2034  # sourced: the scripts that source it use its variables
# lib.sh — sourced by every remote script. Runs as root on the server (via sudo when the SSH user
# is not root).
#
# Parameters arrive as one JSON object on stdin (never spliced into shell text): load_params turns
# {"APP": "x"} into the shell variable P_APP, quoted by Python's shlex. Server-side settings that
# delete steps need (they get no stdin) are kept in /etc/fdeploy/<app>.conf by the agent's base-create.
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

# This bundle lives in ~/.fdeploy/<app>/scripts-<hash>/ of the SSH user; uploads sit beside it.
FDEPLOY_HOME=$(cd "$(dirname "$0")/.." && pwd)
# The server agent (agent/: Python, standard library), which takes these scripts' work over step by
# step (issue 24): `agent VERB [--field NAME]`, parameters as JSON on stdin.
AGENT=$(cd "$(dirname "$0")" && pwd)/agent
agent() { python3 -I -B "$AGENT" "$@"; }

log() { printf '%s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

load_params() {
  local decoded
  P_RAW=$(cat)   # kept verbatim for scripts that pass their parameters on (activate.sh)
  decoded=$(printf '%s' "$P_RAW" | agent shell-params --field lines) ||
    fail "could not read the parameters on stdin (expected one JSON object)"
  eval "$decoded"
  check_app_name "${P_APP:-}"
}

# unit_word TEXT: TEXT as one word of a systemd command line (ExecStart=): as it is when it has only
# name characters, else double-quoted with systemd's escapes (\\ \" %% $$), so that systemd passes
# it on verbatim (no specifier or variable expansion). TEXT must be one line.
unit_word() {
  local w=$1
  if [[ ! $w =~ ^[A-Za-z0-9_.:()]+$ ]]; then
    w=${w//\\/\\\\}; w=${w//\"/\\\"}; w=${w//%/%%}; w=${w//\$/\$\$}; w="\"$w\""
  fi
  printf '%s' "$w"
}

# load_params_line: like load_params from stdin's first line only; the rest stays for a command
load_params_line() {
  local line=""
  IFS= read -r line || [ -n "$line" ] || fail "no parameters on stdin"
  load_params <<<"$line"
}

check_app_name() {
  [[ $1 =~ ^[a-z][a-z0-9-]{1,30}$ ]] || fail "bad app name '$1'"
}

# The app's server-side settings written by base-create: APP_ROOT, APP_USER (an older KEEP_DATA is ignored).
settings_file() { echo "/etc/fdeploy/$1.conf"; }
load_settings() {
  local f; f=$(settings_file "$1")
  [ -f "$f" ] || return 1
  # shellcheck disable=SC1090
  . "$f"
}

# write_if_changed DEST MODE: stdin -> DEST atomically (temp file + rename); exit status 0 when the
# content changed, 1 when it was already identical.
write_if_changed() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"; chmod "$mode" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$dest"
}

# atomic_symlink TARGET LINK: point LINK at TARGET in one rename, so readers never see it missing.
atomic_symlink() {
  ln -sfn "$1" "$2.tmp.$$" && mv -Tf "$2.tmp.$$" "$2"
}

# One deploy at a time per app on this server, across stacks and machines. A lock left by a killed
# deploy is released by the kernel with its process (flock), so it never needs manual clearing.
# The lock lives in /run/fdeploy (root, 0700), where no app user can open, hold or pre-create it
# (/run/lock is world-writable: an app could hold the lock or plant symlinks there).
LOCK_DIR=/run/fdeploy

# apt-get update, then install PACKAGES; one such run at a time on the server: the first deploys of two apps on one
# server run their base steps at once, and apt refuses a second run while the first holds its lock (flock on the
# root-owned lists folder, which apt itself never flocks)
apt_install() {
  flock -w 900 /var/lib/apt/lists sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' apt_install "$@"
}
with_deploy_lock() {
  local lock waited=0
  # the lock is a root-only folder (the agent's lock.py says why), opened read-only to flock it
  lock=$(agent lock-prepare --field path <<<"$P_RAW") || exit 1
  exec 9<"$lock"
  # fd 9 is inherited by this script's children: no process of another user may get it (run_as
  # closes it; the folder's mode stops a reopen of a descriptor that leaked all the same, through /proc)
  # the flock serialises steps; a deploy's lease (the agent's lease-take: DEPLOY in the parameters)
  # keeps another deploy's steps from running between two of its steps: let the flock go, wait
  local holder kind logged=""
  while :; do
    if flock -n 9; then
      holder=$(agent lease-take --field holder <<<"$P_RAW") || exit 1
      [ -n "$holder" ] || break
      flock -u 9; kind=lease
    else
      holder="the lock $lock is held by $(lock_holder)"; kind=lock
    fi
    if [ $waited -ge "${FDEPLOY_LOCK_WAIT:-120}" ]; then
      fail "another deploy of '$P_APP' is running on this server: $holder; waited ${waited}s; fdeploy lock status shows it
fdeploy lock release stops a hung one; pulumi config set --path timeouts.lockWait 10m waits longer"
    fi
    # said once per kind: a step of the other deploy (the lock), then its lease between its steps
    [ "$logged" = "$kind" ] || log "waiting for another deploy of '$P_APP' on this server to finish ($holder)…"
    logged=$kind; sleep 2; waited=$((waited + 2))
  done
  # who took it (fdeploy lock, status): only a record; lock_holder asks the kernel who holds it.
  # It goes with this script (kept as .last) by the EXIT trap; a script with its own EXIT trap calls
  # deploy_lock_released in it.
  DEPLOY_LOCK=$lock
  echo "$$ $(date -u +%FT%TZ) ${SUDO_USER:-${USER:-root}}" >"$lock.owner"
  [ -n "$(trap -p EXIT)" ] || trap deploy_lock_released EXIT
}
# lock_holder: the processes that hold the app's deploy lock now (pid, user, command line), from
# the kernel (the agent's lock-holder: /proc/<pid>/fdinfo lists each descriptor's locks), never from
# the owner record: a descriptor can be inherited or reopened by a process that is not the deploy
lock_holder() { agent lock-holder --app "$P_APP" --field holder; }

# root_dir DIR MODE: DIR exists as a real directory owned by root with MODE; refuses a symlink or a
# directory someone else owns (never chown/chmod through a path another user could have planted).
root_dir() {
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then mkdir -m "$2" "$1"; fi
  [ -d "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %u "$1")" = 0 ] || fail "the directory $1 is not root-owned; refusing to use it"
  chmod "$2" "$1"
}

# The app's environment file: root-owned, 0600, read by systemd (EnvironmentFile=) as root, which
# hands the values to the app as environment variables. Never inside the app-writable shared/.
env_dir() { echo "/etc/fdeploy/$1"; }
env_file() { echo "/etc/fdeploy/$1/env"; }

# The unprivileged account that builds the app's venvs (pip runs the packages' build code): one per
# app, named by a hash of the app name so that it always fits in 32 characters.
build_user() { echo "fdbuild-$(printf '%s' "$1" | sha256sum | cut -c1-10)"; }

# hardening APP_ROOT: the sandbox of every process of the app (its slots, the preflight, release
# commands, jobs), as unit-file lines: no privileges, no capabilities, a read-only system with only
# APP_ROOT/shared writable, private /tmp and /dev, only the system calls and address families a web
# app uses. One list, agent/fdeploy_agent/hardening.conf, which the agent's units use too.
# `systemd-analyze security` rates it (reliability suite).
hardening() {
  sed "s|@APP_ROOT@|$1|g" "$AGENT/fdeploy_agent/hardening.conf"
}

# schema_of_release ID: the schema version release ID last went live with ("" if it never did), from
# the release history (the agent's history.py)
schema_of_release() {
  [[ $1 =~ ^[0-9a-f]{12}$ ]] || return 0
  agent history --app "$P_APP" --set RELEASE_ID="$1" --field schema
}

# The settings a slot runs with — the units (module, workers, timeouts; the socket) and the
# environment file — as three copies in the root-only /etc/fdeploy/<app>/: <name>.desired (what the
# last deploy staged: the agent's unit-stage, env-stage), the file in force, and <name>.live (what
# last went live). Only an activation puts the desired ones in force; one that fails puts the live
# ones back, so the previous release runs with its own settings, and the next attempt with the same
# settings fails the same way. A deploy that fails before the switch changes nothing in force.
setting_path() {
  case $1 in
    service) echo "/etc/systemd/system/$(service_unit "$P_APP")" ;;
    socket) echo "/etc/systemd/system/fdeploy-$P_APP@.socket" ;;
    env) env_file "$P_APP" ;;
    site) echo "/etc/nginx/sites-available/fdeploy-$P_APP.conf" ;;
  esac
}
settings_from() { # settings_from desired|live: put those copies in force
  local name src dest changed=0
  for name in socket service env; do
    src=$(env_dir "$P_APP")/$name.$1; dest=$(setting_path "$name")
    [ -f "$src" ] || continue
    cmp -s "$src" "$dest" || { install -m "$([ "$name" = env ] && echo 0600 || echo 0644)" "$src" "$dest"; changed=1; }
  done
  [ $changed = 0 ] || systemctl daemon-reload
}
keep_live_settings() {
  local name
  for name in socket service env; do
    [ -f "$(setting_path "$name")" ] && install -m 0600 "$(setting_path "$name")" "$(env_dir "$P_APP")/$name.live"
  done
  return 0
}
service_unit() { echo "fdeploy-$1@.service"; }

# docker_app_args: the `docker run` flags of every container of the app (the agent's
# units.docker_app_args), one word a line, from P_RAW's APP, ENV_NAMES, SHARED_DIRS
docker_app_args() {
  agent docker-args --field args <<<"$P_RAW"
}
socket_path() { echo "/run/fdeploy-$1/$2.sock"; }
live_socket_path() { echo "/run/fdeploy-$1/live.sock"; }   # -> the live slot's socket (activate.sh)

# strategy canary: the site's upstream servers are a root-only file that activate.sh rewrites per
# step (the live slot alone, or the live and the new slot with weights), and nginx logs each proxied
# request's slot, status and time to the app's upstream log (components/nginx-site.ts)
upstream_conf() { echo "/etc/fdeploy/$1/upstream.conf"; }
upstream_log() { echo "/var/log/nginx/fdeploy-$1.upstream.log"; }
default_upstream() { printf '# Managed by flask-deploy (activate.sh): all requests to the live slot\nserver unix:%s;\n' "$(live_socket_path "$1")"; }
# ensure_upstream APP: the file and the log exist, so a site that includes the file passes nginx -t
ensure_upstream() {
  root_dir "$(env_dir "$1")" 0700
  [ -f "$(upstream_conf "$1")" ] || default_upstream "$1" | write_if_changed "$(upstream_conf "$1")" 0644 || true
  local f; f=$(upstream_log "$1")
  [ -e "$f" ] || install -m 0640 -o www-data -g adm /dev/null "$f"
}

# shutting_down: the server is stopping, or systemd no longer answers (the last seconds of a
# shutdown): a step that failed then was stopped from outside, not by an error of its own
shutting_down() {
  case $(systemctl is-system-running 2>/dev/null) in
    running|degraded|starting|initializing|maintenance) return 1 ;;
  esac
}

journal_tail() { journalctl -u "$1" -n "${2:-30}" --no-pager -o cat 2>/dev/null || true; }

# run_as USER CMD…: CMD as USER (runuser), with this script's stdin, stdout and stderr only. Every
# other descriptor is closed first: a process of another user can reopen its descriptors through
# /proc/<pid>/fd, and this script's may be root's (the deploy lock is fd 9). Every command that
# runs as the app user (or another unprivileged one) goes through here.
run_as() {
  local user=$1; shift
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ] && [ -e "/proc/$BASHPID/fd/$fd" ]; then exec {fd}>&-; fi
    done
    exec runuser -u "$user" -- "$@"
  )
}

# run_unit NAME ARGS…: `systemd-run --wait --pipe --collect --unit=NAME ARGS…` (a command in a
# transient unit), bounded by the step's time limit (FDEPLOY_STEP_LIMIT, set by the agent's
# supervise; 30 min without it). A unit outlives a killed systemd-run: when the step is stopped (the
# supervisor's SIGTERM: time limit, SSH session gone) the unit is stopped first (its processes get
# SIGTERM, SIGKILL after 5 s), so nothing the step started keeps running.
run_unit() {
  local rc=0
  STEP_UNIT=$1; shift
  trap 'systemctl stop "$STEP_UNIT" 2>/dev/null; exit 143' TERM INT HUP
  systemd-run --quiet --wait --pipe --collect --unit="$STEP_UNIT" -p RuntimeMaxSec="${FDEPLOY_STEP_LIMIT:-1800}" \
    -p TimeoutStopSec=5 "$@" || rc=$?
  trap - TERM INT HUP
  return $rc
}

# run_as_app USER CMD…: run_as for the app's users (the app user, the slot users), with umask 0007:
# what it creates in shared/ is writable by the app's group, which the slot users share
run_as_app() { (umask 0007; run_as "$@"); }

# deploy_lock_released: with_deploy_lock's EXIT trap (or part of a script's own): the owner record
# of this script's lock goes (kept as <lock>.last: who took the lock last, for fdeploy status), so
# a stale record never names a deploy long gone
deploy_lock_released() {
  if [ -n "${DEPLOY_LOCK:-}" ] && [ "$(cut -d' ' -f1 "$DEPLOY_LOCK.owner" 2>/dev/null)" = "$$" ]; then
    mv -f "$DEPLOY_LOCK.owner" "$DEPLOY_LOCK.last" 2>/dev/null || true
  fi
  # the deploy's lease lasts from this step's end (only while this script still holds the flock)
  if [ -n "${DEPLOY_LOCK:-}" ] && { true >&9; } 2>/dev/null; then agent lease-renew <<<"$P_RAW" >/dev/null 2>&1 || true; fi
  return 0
}

# lock_record LOCK: "PID TIME USER" of the deploy that holds LOCK or took it last (a record)
lock_record() { cat "$1.owner" 2>/dev/null || cat "$1.last" 2>/dev/null || echo unknown; }

# result_field NAME: field NAME of the agent's JSON result on stdin (a list: one item a line)
result_field() { agent result-field --field "$1"; }

# site_logs APP: the site's logs (client addresses, paths) exist, readable by root and adm only,
# before nginx opens them (nginx.sh, tls.sh)
site_logs() {
  local f
  for f in "/var/log/nginx/fdeploy-$1.access.log" "/var/log/nginx/fdeploy-$1.error.log"; do
    [ -e "$f" ] || install -m 0640 -o www-data -g adm /dev/null "$f"
    [ -L "$f" ] || chmod 0640 "$f"
  done
}
