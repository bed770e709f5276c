#!/bin/sh
# Runs the provider's ssh end-to-end tests (FDEPLOY_SSH_TEST=1) against a throw-away OpenSSH server that
# listens on 127.0.0.1 only and is stopped again when the tests finish.
#
#   scripts/toolchain/command-provider/testdata/ssh-test.sh [go test flags...]
#   scripts/toolchain/command-provider/testdata/ssh-test.sh --exec CMD [ARGS...]   # run CMD with the FDEPLOY_SSH_* env
#
# Needs root (for a private mount namespace). If /usr/sbin/sshd is absent, the openssh-server (and libwrap0)
# Debian packages are fetched with `apt-get download` and unpacked into a cache directory; nothing is installed
# and no system service is started. Inside the namespace, copies of /etc/passwd and /etc/shadow (adding the
# privilege-separation user "sshd" and a known root password) and a private /run are mounted; the host system
# is not modified.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
module=$(cd "$here/../.." && pwd)
port=${FDEPLOY_SSH_PORT:-22222}
cache=${FDEPLOY_SSHD_CACHE:-/tmp/fdeploy-sshd}
work=$(mktemp -d /tmp/fdeploy-ssh-test.XXXXXX)
sshd_pid=

cleanup() {
	if [ -n "$sshd_pid" ]; then
		kill "$sshd_pid" 2>/dev/null || true
		wait "$sshd_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# --- sshd binary ---
sshd=/usr/sbin/sshd
libpath=
if [ ! -x "$sshd" ]; then
	if [ ! -x "$cache/root/usr/sbin/sshd" ]; then
		mkdir -p "$cache/debs"
		(cd "$cache/debs" && apt-get download openssh-server libwrap0 >/dev/null)
		for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$cache/root"; done
	fi
	sshd=$cache/root/usr/sbin/sshd
	libpath=$cache/root/usr/lib/x86_64-linux-gnu
fi

# --- keys and accounts ---
ssh-keygen -q -t ed25519 -N '' -C test-host -f "$work/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C test-client -f "$work/client"
ssh-keygen -q -t ed25519 -N 'enc pass' -C test-enc -f "$work/client_enc"
cat "$work/client.pub" "$work/client_enc.pub" >"$work/authorized_keys"
chmod 600 "$work/authorized_keys"
password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
hash=$(openssl passwd -6 "$password")
grep -v '^sshd:' /etc/passwd >"$work/passwd"
echo 'sshd:x:65534:65534::/run/sshd:/usr/sbin/nologin' >>"$work/passwd"
awk -F: -v h="$hash" 'BEGIN{OFS=":"} $1=="root"{$2=h} {print}' /etc/shadow >"$work/shadow"
chmod 600 "$work/shadow"

cat >"$work/run-sshd.sh" <<EOF
#!/bin/sh
set -e
mount --bind "$work/passwd" /etc/passwd
mount --bind "$work/shadow" /etc/shadow
mount -t tmpfs tmpfs /run
mkdir -p /run/sshd
${libpath:+export LD_LIBRARY_PATH="$libpath"}
exec "$sshd" -D -E "$work/sshd.log" ${FDEPLOY_SSHD_DEBUG:+-o LogLevel=DEBUG3} -f /dev/null -p "$port" -o ListenAddress=127.0.0.1 -h "$work/host_ed25519" \
	-o AuthorizedKeysFile="$work/authorized_keys" -o UsePAM=no -o PidFile=none -o StrictModes=no \
	-o PermitRootLogin=yes -o PasswordAuthentication=yes -o KbdInteractiveAuthentication=no \
	-o AllowTcpForwarding=yes -o MaxStartups=100 -o MaxSessions=100
EOF
chmod +x "$work/run-sshd.sh"
unshare -m --propagation private "$work/run-sshd.sh" 2>"$work/sshd.log" &
sshd_pid=$!

i=0
until ssh-keyscan -p "$port" 127.0.0.1 >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 50 ] || ! kill -0 "$sshd_pid" 2>/dev/null; then
		echo "sshd did not start:" >&2
		cat "$work/sshd.log" >&2
		exit 1
	fi
	sleep 0.1
done

export FDEPLOY_SSHD_LOG=$work/sshd.log FDEPLOY_SSH_TEST=1 FDEPLOY_SSH_PORT=$port FDEPLOY_SSH_KEY=$work/client \
	FDEPLOY_SSH_HOST_PUB=$work/host_ed25519.pub FDEPLOY_SSH_PASSWORD=$password \
	FDEPLOY_SSH_ENC_KEY=$work/client_enc FDEPLOY_SSH_ENC_KEY_PASS='enc pass'
status=0
if [ "${1:-}" = "--exec" ]; then
	shift
	"$@" || status=$?
else
	cd "$module"
	go test -count=1 "$@" ./command-provider/ || status=$?
fi
if [ $status -ne 0 ] && [ -n "${FDEPLOY_SSH_TEST_VERBOSE:-}" ]; then
	cat "$work/sshd.log" >&2
fi
exit $status
