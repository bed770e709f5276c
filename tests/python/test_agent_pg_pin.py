"""Pinning the managed PostgreSQL server's certificate (issue 31): the database server's certificate
covers the address apps connect to (subjectAltName, made with the real openssl), one made before
pinning (CN only) is made again once, and the app server's pin (pg-pin) is a root-owned, readable CA
file that a re-run leaves alone; the migration runner hands the CA file to psql (PGSSLROOTCERT)."""
import os
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts"))

import migrate_pg  # noqa: E402
from fdeploy_agent import pg_pin, pg_server  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402


@pytest.fixture
def dbhost(tmp_path):
    (tmp_path / "etc/fdeploy/postgres").mkdir(parents=True)
    return Host(root=str(tmp_path), user_ids=lambda name: (0, 0)), tmp_path


def san(path):
    return subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-ext", "subjectAltName"], capture_output=True, text=True).stdout


def test_the_certificate_covers_the_address_apps_connect_to_and_is_made_once(dbhost):
    host, root = dbhost
    assert pg_server.ensure_certificate(host, "10.0.0.5", print)
    assert "IP Address:10.0.0.5" in san(root / "etc/fdeploy/postgres/server.crt")
    assert pg_server.cert_names(host) == ["10.0.0.5"]
    assert stat.S_IMODE(os.stat(root / "etc/fdeploy/postgres/server.key").st_mode) == 0o640
    before = (root / "etc/fdeploy/postgres/server.crt").read_bytes()
    assert not pg_server.ensure_certificate(host, "10.0.0.5", print)
    assert (root / "etc/fdeploy/postgres/server.crt").read_bytes() == before
    pem = pg_server.certificate(host)
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n") and pem.endswith("-----END CERTIFICATE-----\n")


def test_a_certificate_made_before_pinning_is_made_again_with_the_name_a_new_name_keeps_the_old(dbhost):
    host, root = dbhost
    d = root / "etc/fdeploy/postgres"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "1",
                    "-subj", "/CN=10.0.0.5", "-keyout", str(d / "server.key"), "-out", str(d / "server.crt")], check=True, capture_output=True)
    assert pg_server.cert_names(host) == []   # the previous main's: CN only
    assert pg_server.ensure_certificate(host, "10.0.0.5", print)
    assert pg_server.cert_names(host) == ["10.0.0.5"]
    assert pg_server.ensure_certificate(host, "db.example", print)
    assert pg_server.cert_names(host) == ["10.0.0.5", "db.example"]
    assert "DNS:db.example" in san(d / "server.crt")


def test_pg_pin_writes_a_root_owned_readable_ca_file_once(tmp_path, dbhost):
    dbh, _ = dbhost
    pg_server.ensure_certificate(dbh, "10.0.0.5", print)
    pem = pg_server.certificate(dbh)
    root = app_root(tmp_path / "app", "run")
    host = Host(root=str(root))
    r = pg_pin.pg_pin(host, {"APP": "shop", "CERT": pem}, print, 5)
    assert r == {"ok": True, "changed": True, "path": "/etc/fdeploy/shop.pg-root.crt"}
    f = root / "etc/fdeploy/shop.pg-root.crt"
    assert f.read_text() == pem
    st = os.stat(f)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    assert not pg_pin.pg_pin(host, {"APP": "shop", "CERT": pem}, print, 5)["changed"]


@pytest.mark.parametrize("cert", ["", "not a certificate", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", None])
def test_pg_pin_refuses_what_is_not_a_pem_certificate_before_writing(tmp_path, cert):
    root = app_root(tmp_path, "run")
    with pytest.raises(AgentError, match=r"CERT: expected the database server's certificate in PEM"):
        pg_pin.pg_pin(Host(root=str(root)), {"APP": "shop", "CERT": cert}, print, 5)
    assert not (root / "etc/fdeploy/shop.pg-root.crt").exists()


def test_the_runner_hands_the_pinned_ca_file_to_psql():
    env = migrate_pg.parse_url("postgresql://shop:pw@10.0.0.5:5432/shop?sslmode=verify-full&sslrootcert=/etc/fdeploy/shop.pg-root.crt")
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"]) == ("verify-full", "/etc/fdeploy/shop.pg-root.crt")
    with pytest.raises(migrate_pg.UrlError, match="sslrootcert=ca.crt"):
        migrate_pg.parse_url("postgresql://shop:pw@h/shop?sslrootcert=ca.crt")


def test_docker_containers_get_the_pinned_ca_file_read_only_only_when_there_is_one(tmp_path):
    root = app_root(tmp_path, "run")
    host = Host(root=str(root))
    assert pg_pin.mount_args(host, "shop") == []
    (root / "etc/fdeploy/shop.pg-root.crt").write_text("x")
    assert pg_pin.mount_args(host, "shop") == [
        "--mount", "type=bind,source=/etc/fdeploy/shop.pg-root.crt,target=/etc/fdeploy/shop.pg-root.crt,readonly"]
