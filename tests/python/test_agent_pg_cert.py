"""The managed PostgreSQL server's certificate when the server gets a new name (agent pg_server.py), with
the real openssl: what a client pinned to the certificate it has (sslrootcert, verify-full, as libpq checks
it with OpenSSL) accepts."""
import os
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import pg_server  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402


@pytest.fixture
def dbhost(tmp_path):
    (tmp_path / "etc/fdeploy/postgres").mkdir(parents=True)
    return Host(root=str(tmp_path), user_ids=lambda name: (0, 0)), tmp_path / "etc/fdeploy/postgres"


def trusts(pin, cert, name):
    """openssl verify as a client pinned to PIN (its only trust anchor) checks CERT for NAME: '' or the error."""
    flag = "-verify_ip" if name[0].isdigit() else "-verify_hostname"
    r = subprocess.run(["openssl", "verify", "-CAfile", str(pin), flag, name, str(cert)], capture_output=True, text=True)
    return "" if r.returncode == 0 else (r.stdout + r.stderr).strip()


def handshake(pin, cert, key, name):
    """A real TLS handshake: s_server with CERT/KEY, s_client pinned to PIN checking NAME; its verify result."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", str(cert), "-key", str(key), "-quiet"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", str(pin), "-verify_return_error",
                            "-verify_hostname", name, "-brief"], input="", capture_output=True, text=True, timeout=20)
        return r.returncode, r.stderr
    finally:
        server.kill()
        server.wait()


def self_signed(d, name, san, key_from=None):
    key = ["-key", str(key_from)] if key_from else ["-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", str(d / "server.key")]
    subprocess.run(["openssl", "req", "-x509", "-new", *key, "-days", "1", "-subj", "/CN=%s" % name,
                    "-addext", "subjectAltName=" + san, "-out", str(d / "server.crt")], check=True, capture_output=True)


def test_a_self_signed_certificate_made_again_even_with_its_key_and_subject_is_refused_by_the_old_pin(tmp_path):
    """Why a new name does not simply make the certificate again: OpenSSL trusts a self-signed server
    certificate only when it is the very one pinned."""
    self_signed(tmp_path, "10.0.0.5", "IP:10.0.0.5")
    (tmp_path / "old.crt").write_bytes((tmp_path / "server.crt").read_bytes())
    self_signed(tmp_path, "10.0.0.5", "IP:10.0.0.5,DNS:db.example", key_from=tmp_path / "server.key")
    assert "self-signed certificate" in trusts(tmp_path / "old.crt", tmp_path / "server.crt", "10.0.0.5")


def test_a_new_name_keeps_the_key_and_the_pin_other_stacks_have(dbhost):
    host, d = dbhost
    assert pg_server.ensure_certificate(host, "10.0.0.5", print)
    pin, fp, key = pg_server.certificate(host), pg_server.fingerprint(host), (d / "server.key").read_bytes()
    (d.parent / "pinned.crt").write_text(pin)   # what every app server of every stack holds
    assert pg_server.ensure_certificate(host, "db.example", print)
    assert pg_server.cert_names(host) == ["10.0.0.5", "db.example"]
    assert (pg_server.certificate(host), pg_server.fingerprint(host), (d / "server.key").read_bytes()) == (pin, fp, key)
    for name in ("10.0.0.5", "db.example"):
        assert trusts(d.parent / "pinned.crt", d / "server.crt", name) == ""
    assert "mismatch" in trusts(d.parent / "pinned.crt", d / "server.crt", "10.0.0.6")
    rc, err = handshake(d.parent / "pinned.crt", d / "server.crt", d / "server.key", "db.example")
    assert rc == 0 and "Verification: OK" in err, err
    assert not pg_server.ensure_certificate(host, "db.example", print)   # a re-run changes nothing
    assert pg_server.ensure_certificate(host, "db2.example", print)       # a third name: issued by the same pin again
    assert pg_server.certificate(host) == pin and trusts(d.parent / "pinned.crt", d / "server.crt", "db2.example") == ""


def test_a_server_set_up_by_the_previous_version_keeps_its_pin(dbhost):
    host, d = dbhost
    self_signed(d, "10.0.0.5", "IP:10.0.0.5")   # the previous main's: a self-signed certificate, the one pinned
    before = (d / "server.crt").read_text()
    assert pg_server.ensure_certificate(host, "db.example", print)
    assert pg_server.certificate(host) == before and (d / "root.crt").read_text() == before
    assert trusts(d / "root.crt", d / "server.crt", "db.example") == "" and trusts(d / "root.crt", d / "server.crt", "10.0.0.5") == ""


def test_without_its_key_the_server_gets_a_new_one_and_old_pins_no_longer_match(dbhost):
    host, d = dbhost
    pg_server.ensure_certificate(host, "10.0.0.5", print)
    pg_server.ensure_certificate(host, "db.example", print)
    (d.parent / "pinned.crt").write_text(pg_server.certificate(host))
    os.unlink(d / "server.key")
    assert pg_server.ensure_certificate(host, "db.example", print)
    assert not (d / "root.crt").exists() and pg_server.certificate(host) == (d / "server.crt").read_text()
    assert "self-signed certificate" in trusts(d.parent / "pinned.crt", d / "server.crt", "db.example")
    assert trusts(d / "server.crt", d / "server.crt", "db.example") == ""   # the new pin (each stack's next up) works
