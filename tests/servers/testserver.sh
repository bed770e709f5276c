#!/usr/bin/env bash
# testserver.sh — disposable Debian bookworm "VPS" test servers: systemd as PID 1, sshd, nginx,
# python3-venv, sqlite3; each in its own network namespace on a private bridge with no route out,
# booted by systemd-nspawn from a cached debootstrap image.
#
#   testserver.sh base [postgres]      build the cached image (once; ~60-90 s; postgres: the variant, ~110 s)
#   testserver.sh up NAME OCTET [--image postgres]
#                                      boot root@10.213.0.OCTET (~2 s), print its address (--image
#                                      postgres: from the image variant with Debian's postgresql 15); with
#                                      FDEPLOY_KEEP_DISK=1 its disk survives down and restarts;
#                                      with FDEPLOY_DOCKER=1 it can run Docker (see docker_args)
#   testserver.sh down NAME            clean halt, unmount, remove netns/veth/state (a kept disk stays)
#   testserver.sh rm-disk NAME         remove the disk FDEPLOY_KEEP_DISK=1 kept for NAME
#   testserver.sh down-all             every server, the bridge and the apt proxy
#   testserver.sh list                 the servers that are up (one name a line)
#   testserver.sh gc                   remove the bridge and apt proxy if no server is left
#   testserver.sh sh NAME [CMD...]     run CMD inside without ssh (nsenter)
#   testserver.sh ssh-config NAME      print host, key and known_hosts paths (KEY=VALUE lines)
#   testserver.sh wheelhouse REQ...    download the packages of requirements files (wheels, sdists and
#                                      their build backends) with the servers' Python into the wheelhouse
#
# Servers reach only the bridge (10.213.0.0/24): apt goes through an allow-listed proxy on the
# bridge address (only to the mirror this machine's apt uses); pip installs from a read-only
# wheelhouse (/opt/wheelhouse inside) filled by `wheelhouse` from this machine's own pip config.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
# FDEPLOY_SERVERS: the servers' folder (image, keys, hosts) on its own, e.g. the machine's shared one
# while FDEPLOY_CACHE points at a fresh toolchain cache (the bridge and apt proxy are machine-wide)
W=${FDEPLOY_SERVERS:-$CACHE/servers}
BR=fd-br0 NET=10.213.0
KEY=$W/id_ed25519 KH=$W/known_hosts
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
# acl (a base package the product installs: components/base-system.ts) and strace (least-privilege's
# probes) are in the image: through the apt proxy each fresh server's first deploy spent seconds on them
PKGS=systemd,systemd-sysv,dbus,openssh-server,iproute2,python3,python3-venv,nginx,sqlite3,sudo,curl,ca-certificates,procps,acl,strace
IMAGE_REV=1   # bump when base() changes, so cached images are rebuilt
# image variants (`up … --image NAME`, `base NAME`): the default, or postgres (database servers: its
# install through the apt proxy would cost every run ~30 s). Content-addressed by their packages.
select_image() {
  case ${1:-default} in
    default) ;; postgres) PKGS=$PKGS,postgresql ;;
    *) echo "unknown image '$1' (expected default or postgres)" >&2; exit 2 ;;
  esac
  IMAGE_ID=$(printf '%s|%s' "$PKGS" "$IMAGE_REV" | sha256sum | cut -c1-12)
  IMAGE=$W/base-$IMAGE_ID.tar.zst
}
select_image default
SSH=(ssh -i "$KEY" -o UserKnownHostsFile="$KH" -o StrictHostKeyChecking=yes -o BatchMode=yes
     -o ConnectTimeout=2 -o LogLevel=ERROR)
mkdir -p "$W"

need() {   # the host packages this harness uses (Debian names)
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v ssh >/dev/null || missing+=(openssh-client)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

base() {
  need
  [ -f "$IMAGE" ] && { echo "image $IMAGE (cached)"; return; }
  # one build of an image at a time: suites started together after a change of PKGS all need it (two
  # builds in one folder failed one of them); a waiter finds it built. Other variants build beside it.
  exec 8>"$W/base-$IMAGE_ID.lock"
  flock 8
  [ -f "$IMAGE" ] && { echo "image $IMAGE (built meanwhile)"; exec 8>&-; return; }
  local R=$W/rootfs-$IMAGE_ID.tmp
  rm -rf "$R"
  debootstrap --variant=minbase --include="$PKGS" bookworm "$R" "$MIRROR" >"$W/debootstrap-$IMAGE_ID.log" 2>&1 ||
    { tail -20 "$W/debootstrap-$IMAGE_ID.log"; exit 1; }
  chroot "$R" apt-get clean
  rm -f "$R"/etc/ssh/ssh_host_* "$R"/var/lib/dbus/machine-id; : >"$R/etc/machine-id" # per-host identity
  printf '# no DNS in the test net; apt goes through the host proxy\n' >"$R/etc/resolv.conf"
  echo "Acquire::http::Proxy \"http://$NET.1:3142\";" >"$R/etc/apt/apt.conf.d/01proxy"
  # pip: no index reachable; install from the wheelhouse bind-mounted at boot
  printf '[global]\nno-index = true\nfind-links = /opt/wheelhouse\n' >"$R/etc/pip.conf"
  rm -f "$R"/etc/systemd/system/timers.target.wants/apt-daily*.timer # no surprise apt runs in tests
  rm -f "$R"/etc/nginx/sites-enabled/default   # a bare server: nothing on port 80 until we deploy
  tar -C "$R" -cf - . | zstd -q -T0 -3 -f -o "$IMAGE.tmp" && mv "$IMAGE.tmp" "$IMAGE"
  rm -rf "$R"
  exec 8>&-
  echo "image $IMAGE built"
}

ensure_net() { # bridge (host = .1) + allow-listed apt proxy; no ip_forward, no NAT
  ip link show $BR >/dev/null 2>&1 || {
    ip link add $BR type bridge; ip addr add $NET.1/24 dev $BR; ip link set $BR up; }
  if ! { [ -f "$W/aptproxy.pid" ] && kill -0 "$(cat "$W/aptproxy.pid")" 2>/dev/null; }; then
    setsid python3 "$HERE/aptproxy.py" $NET.1 3142 "${MIRROR#*://}" >"$W/aptproxy.log" 2>&1 </dev/null &
    echo $! >"$W/aptproxy.pid"
  fi
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -f "$KEY" -C fdeploy-tests
  mkdir -p "$W/wheelhouse"
}

up() {
  local N=$1 OCTET=$2; local IP=$NET.$OCTET D=$W/hosts/$1; local R=$D/root
  [[ $N =~ ^[a-z][a-z0-9-]{0,10}$ ]] || { echo "bad server name '$N' (a-z0-9-, max 11)" >&2; exit 2; }
  need; [ -f "$IMAGE" ] || base >/dev/null
  [ -d "$D" ] && down "$N"                       # a leftover from a killed run: start clean
  # suites run concurrently: the bridge, proxy and base extraction are shared, and gc must not
  # remove the bridge between ensure_net and this server's veth joining it
  mkdir -p "$W"; exec 8>"$W/.net.lock"; flock 8
  ensure_net; mkdir -p "$D"
  if [ ! -d "$W/base-$IMAGE_ID" ]; then
    rm -rf "$W/base-$IMAGE_ID.tmp"; mkdir -p "$W/base-$IMAGE_ID.tmp"
    zstd -dc "$IMAGE" | tar -C "$W/base-$IMAGE_ID.tmp" -xf -; mv "$W/base-$IMAGE_ID.tmp" "$W/base-$IMAGE_ID"
  fi
  # the server's disk: its own folder, or with FDEPLOY_KEEP_DISK=1 one that outlives `down` and a
  # machine restart (the dev server: its data and host key come back with it)
  local disk=$D
  [ "${FDEPLOY_KEEP_DISK:-}" = 1 ] && disk=$W/disks/$N
  mkdir -p "$disk/upper" "$disk/work" "$R"
  mount -t overlay "fd-$N" -o "lowerdir=$W/base-$IMAGE_ID,upperdir=$disk/upper,workdir=$disk/work" "$R"
  echo "$N" >"$R/etc/hostname"; printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$N" >"$R/etc/hosts"
  install -d -m700 "$R/root/.ssh"; install -m600 "$KEY.pub" "$R/root/.ssh/authorized_keys"
  [ -s "$R/etc/ssh/ssh_host_ed25519_key" ] && [ "$disk" != "$D" ] ||
    { rm -f "$R"/etc/ssh/ssh_host_ed25519_key*; ssh-keygen -q -t ed25519 -N '' -f "$R/etc/ssh/ssh_host_ed25519_key" -C "root@$N"; }
  touch "$KH"; sed -i "/^$IP /d" "$KH"
  echo "$IP $(cut -d' ' -f1,2 "$R/etc/ssh/ssh_host_ed25519_key.pub")" >>"$KH"
  # Fixed MAC per address: a re-created server must not hide behind a stale ARP entry (~25 s stall).
  local MAC; MAC=$(printf '02:42:0a:d5:00:%02x' "$OCTET"); ip neigh flush to "$IP" dev $BR 2>/dev/null || true
  ip netns add "fd-$N"
  ip link add "fd-$N" type veth peer name eth0 address "$MAC" netns "fd-$N"
  ip link set "fd-$N" master $BR up
  flock -u 8
  ip -n "fd-$N" addr add "$IP/24" dev eth0; ip -n "fd-$N" link set eth0 up; ip -n "fd-$N" link set lo up
  echo "$IP" >"$D/ip"
  local extra=()
  [ "${FDEPLOY_DOCKER:-}" = 1 ] && { docker_args "$disk" "$R"; extra=("${DOCKER_ARGS[@]}"); }
  # --register=no --keep-unit: this machine's PID 1 is not systemd (no machined, no system bus).
  # The loop: `systemctl reboot` inside makes nspawn exit 133, so boot again, like a real VPS.
  setsid bash -c 'while :; do "$@" & echo $! > "'"$D"'/nspawn.pid"; wait $!; [ $? = 133 ] || break; done' _ \
    systemd-nspawn -q -D "$R" -b -M "fd-$N" --register=no --keep-unit --console=passive \
    --network-namespace-path="/run/netns/fd-$N" --bind-ro="$W/wheelhouse:/opt/wheelhouse" "${extra[@]}" \
    >"$D/console.log" 2>&1 </dev/null &
  echo $! >"$D/loop.pid"
  local st=""
  sleep 0.2
  for _ in $(seq 1 300); do # ready = sshd answers AND systemd finished booting
    st=$("${SSH[@]}" root@"$IP" 'systemctl is-system-running --wait || true' 2>/dev/null) && [ -n "$st" ] && break
    kill -0 "$(cat "$D/nspawn.pid")" 2>/dev/null || { cat "$D/console.log" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "$st" ] || { echo "server $N did not come up" >&2; exit 1; }
  echo "$IP"
}

# docker_args DISK ROOT: a server that can run Docker (FDEPLOY_DOCKER=1; the runtime: docker e2e).
# dockerd inside systemd-nspawn needs the unified cgroup hierarchy, CAP_NET_ADMIN (--private-network
# with the netns), the keyring and bpf system calls, and /var/lib/docker on a real folder (overlay2
# cannot stack on the server's overlay root). Docker itself is not preinstalled: the deploy's base
# system installs docker.io through the apt proxy, as on a real server. The test net has no
# registry, so the harness provides the base image a real server would pull: when dockerd starts,
# a drop-in imports the servers' own Debian rootfs (python3, python3-venv) plus the wheelhouse (pip
# installs from /opt/wheelhouse, as on the servers) as fdeploy-test/python:bookworm.
docker_args() {
  local disk=$1 R=$2
  mkdir -p "$disk/docker"
  export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
  DOCKER_ARGS=(--private-network --system-call-filter="@keyring bpf" --bind="$disk/docker:/var/lib/docker"
    --bind-ro="$W/base-$IMAGE_ID:/opt/fdeploy-test-rootfs")
  mkdir -p "$R/etc/systemd/system/docker.service.d" "$R/usr/local/sbin"
  cat >"$R/usr/local/sbin/fdeploy-test-image" <<'SH'
#!/bin/sh
# test harness only (tests/servers/testserver.sh): the base image of the runtime: docker e2e
set -e
docker image inspect fdeploy-test/python:bookworm >/dev/null 2>&1 && exit 0
tar -cf - -C /opt/fdeploy-test-rootfs --exclude=./usr/share/doc --exclude=./usr/share/man \
    --exclude=./usr/share/locale --exclude=./var/lib/apt/lists --exclude=./var/cache/apt . -C / ./opt/wheelhouse |
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - fdeploy-test/python:bookworm >/dev/null
SH
  chmod 0755 "$R/usr/local/sbin/fdeploy-test-image"
  printf '[Service]\nExecStartPost=/usr/local/sbin/fdeploy-test-image\nTimeoutStartSec=300\n' \
    >"$R/etc/systemd/system/docker.service.d/fdeploy-test-image.conf"
}

leader() { pgrep -P "$(cat "$W/hosts/$1/nspawn.pid")" | head -1; }
sh_in() { local N=$1; shift; nsenter -t "$(leader "$N")" -a "${@:-/bin/bash}"; }

down() {
  local N=$1; local D=$W/hosts/$N P L
  P=$(cat "$D/nspawn.pid" 2>/dev/null || true); L=$(cat "$D/loop.pid" 2>/dev/null || true)
  [ -n "$L" ] && kill -TERM "$L" 2>/dev/null || true # stop the reboot loop first
  if [ -n "$P" ] && kill -0 "$P" 2>/dev/null; then     # SIGTERM: nspawn asks systemd inside to halt
    kill -TERM "$P"
    for _ in $(seq 1 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$P" 2>/dev/null && kill -KILL "$P" || true
  fi
  mountpoint -q "$D/root" 2>/dev/null && { umount "$D/root" 2>/dev/null || umount -l "$D/root"; }
  ip netns del "fd-$N" 2>/dev/null || true; ip link del "fd-$N" 2>/dev/null || true
  rm -rf "$D" "/run/systemd/nspawn/propagate/fd-$N" # host /run is not tmpfs: nspawn can't clean it
}

list() { # the servers whose folder exists; "(stopped)" after a server that is not running (machine restart)
  local d
  for d in "$W"/hosts/*/; do
    [ -d "$d" ] || continue
    if kill -0 "$(cat "$d/nspawn.pid" 2>/dev/null || echo 0)" 2>/dev/null; then basename "$d"; else echo "$(basename "$d") (stopped)"; fi
  done
  return 0
}

down_all() {
  local d
  for d in "$W"/hosts/*/; do [ -d "$d" ] && down "$(basename "$d")"; done
  gc
}

gc() { # the bridge and the apt proxy go when no server is left
  mkdir -p "$W"; exec 8>"$W/.net.lock"; flock 8
  compgen -G "$W/hosts/*/" >/dev/null && return 0
  [ -f "$W/aptproxy.pid" ] && kill "$(cat "$W/aptproxy.pid")" 2>/dev/null || true
  rm -f "$W/aptproxy.pid"
  ip link del $BR 2>/dev/null || true
}

ssh_config() {
  echo "HOST=$(cat "$W/hosts/$1/ip")"; echo "KEY=$KEY"; echo "KNOWN_HOSTS=$KH"
}

# The servers' own interpreter resolves the requirements: Debian's /usr/bin/python3 (bookworm's 3.11.2
# on this machine too, not a newer python3 on PATH), so environment markers (python_full_version …)
# select what they select on a server. Source distributions are kept (a pin published only as one is
# built on the server, as a real server builds it), with their build backends (build_backends).
SERVER_PY=${FDEPLOY_SERVER_PYTHON:-/usr/bin/python3}
wheelhouse() { # REQ...: the packages (wheels or sdists) the servers' pip installs, into the wheelhouse
  ensure_net
  local req
  for req in "$@"; do
    "$SERVER_PY" -m pip download -q --disable-pip-version-check -r "$req" -d "$W/wheelhouse"
  done
  build_backends "$W/wheelhouse"
}

build_backends() { # DIR: each sdist's [build-system] requires (PEP 518; none: setuptools, wheel), until none is missing
  local dir=$1 reqs
  for _ in 1 2 3; do
    reqs=$("$SERVER_PY" - "$dir" <<'PY'
import pathlib, sys, tarfile, tomllib, zipfile
def pyproject(p):
    try:
        if p.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(p) as t:
                m = next((m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")), None)
                return t.extractfile(m).read() if m else None
        with zipfile.ZipFile(p) as z:
            n = next((n for n in z.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")), None)
            return z.read(n) if n else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile):
        return None
seen = set()
for p in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    if not p.name.endswith((".tar.gz", ".tgz", ".zip")):
        continue
    text = pyproject(p)
    req = tomllib.loads(text.decode()).get("build-system", {}).get("requires") if text else None
    seen.update(req if req is not None else ["setuptools>=40.8.0", "wheel"])
print("\n".join(sorted(seen)))
PY
)
    [ -n "$reqs" ] || return 0
    local before; before=$(ls "$dir" | wc -l)
    # shellcheck disable=SC2086 # one requirement a line
    (IFS=$'\n'; "$SERVER_PY" -m pip download -q --disable-pip-version-check -d "$dir" $reqs)
    [ "$(ls "$dir" | wc -l)" != "$before" ] || return 0
  done
}

case ${1:-} in
  base) select_image "${2:-default}"; base ;;
  up) [ "${4:-}" = --image ] && select_image "${5:-}"; up "$2" "$3" ;; down) down "$2" ;; down-all) down_all ;; gc) gc ;; list) list ;; rm-disk) rm -rf "${W:?}/disks/${2:?}" ;;
  sh) shift; sh_in "$@" ;; ssh-config) ssh_config "$2" ;; wheelhouse) shift; wheelhouse "$@" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
