"""The PostgreSQL server steps (pg_server.py) without a server: a temporary folder stands for /, and
psql, pg_lsclusters and systemctl are stood in for at the Host seam by a tiny model of the catalog.
What a user relies on: the role's password reaches the server only as a SCRAM verifier (never on a
command line, never in plaintext SQL), a re-run changes nothing, pg_hba lets each role reach only its
own database from its own servers, two apps never share a role or database, bad input is refused
naming the setting."""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import pg_server  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

PW = "s3cret-password-0123456789"


class Catalog:
    """Roles (name -> rolpassword), databases (name -> [owner, acl]), what psql was fed."""

    def __init__(self):
        self.roles, self.dbs, self.sql, self.reloads, self.restarts = {}, {}, [], 0, 0
        self.settings = {"listen_addresses": "localhost", "hba_file": "/etc/postgresql/15/main/pg_hba.conf", "ssl": "on",
                         "ssl_cert_file": "/etc/ssl/certs/ssl-cert-snakeoil.pem", "ssl_key_file": "/etc/ssl/private/ssl-cert-snakeoil.key",
                         "ssl_min_protocol_version": "TLSv1.2", "password_encryption": "scram-sha-256"}

    def __call__(self, argv, merge_output=False, input=None, umask=-1):
        out = ""
        if argv[0] == "pg_lsclusters":
            out = "15  main    5432 online postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n"
        elif argv[0] == "systemctl":
            self.reloads += argv[1] == "reload"
            self.restarts += argv[1] == "restart"
        elif argv[:5] == ["runuser", "-u", "postgres", "--", "psql"]:
            self.sql.append(input)
            out = self.psql(input)
        return subprocess.CompletedProcess(argv, 0, out, "")

    def psql(self, sql):
        lit = lambda: re.search(r"= '([^']*)'", sql).group(1)   # noqa: E731
        if sql.startswith("SELECT name, setting FROM pg_settings"):
            return "\n".join("%s|%s" % kv for kv in sorted(self.settings.items()))
        if sql.startswith("ALTER SYSTEM"):
            for k, v in re.findall(r"ALTER SYSTEM SET (\w+) = '([^']*)';", sql):
                self.settings[k] = v   # in force after the restart or reload that follows
            return ""
        if sql.startswith("SELECT pg_reload_conf()"):
            self.reloads += 1
            return "t"
        if sql.startswith("SELECT coalesce(rolpassword"):
            return self.roles.get(lit(), "")
        if sql.startswith("SELECT 1 FROM pg_roles"):
            return "1" if lit() in self.roles else ""
        if sql.startswith("SELECT pg_get_userbyid"):
            return self.dbs.get(lit(), ["", ""])[0]
        if sql.startswith("SELECT coalesce(datacl"):
            return self.dbs[lit()][1]
        m = re.match(r"(CREATE|ALTER) ROLE \"(\w+)\" .*PASSWORD '([^']*)';", sql)
        if m:
            self.roles[m.group(2)] = m.group(3)
            return ""
        m = re.match(r"CREATE DATABASE \"(\w+)\" OWNER \"(\w+)\"", sql)
        if m:
            self.dbs[m.group(1)] = [m.group(2), ""]
            return ""
        m = re.match(r"REVOKE ALL ON DATABASE \"(\w+)\"", sql)
        if m:
            owner = self.dbs[m.group(1)][0]
            self.dbs[m.group(1)][1] = "{%s=CTc/%s}" % (owner, owner)
            return ""
        raise AssertionError("unexpected SQL: " + sql)


@pytest.fixture
def server(tmp_path):
    cat = Catalog()
    (tmp_path / "etc").mkdir()
    host = Host(root=str(tmp_path), run=cat, which=lambda c: "/usr/bin/" + c, sleep=lambda s: None)
    return host, cat, tmp_path


def app(name="shop", db="shop", role="shop", allow="10.0.0.5", local=False, password=PW):
    return {"APP": name, "DB": db, "ROLE": role, "ALLOW": allow, "LOCAL": local, "PASSWORD": password}


def test_the_verifier_is_scram_sha_256_as_postgresql_stores_it():
    # RFC 7677's example (user "user", password "pencil"): its salt and iterations give this ServerKey/StoredKey
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    v = pg_server.scram_verifier("pencil", salt, 4096)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert v.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert v.endswith(":" + base64.b64encode(server_key).decode())
    assert pg_server.verifier_matches(v, "pencil") and not pg_server.verifier_matches(v, "pencil2")
    assert not pg_server.verifier_matches("md5abc", "pencil")
    assert pg_server.scram_verifier("pencil") != pg_server.scram_verifier("pencil")   # a new salt each time


def test_a_new_app_gets_its_role_and_database_the_password_only_as_a_verifier(server):
    host, cat, root = server
    r = pg_server.pg_app(host, app(), print, 5)
    assert r["changed"] and r["db"] == "shop"
    assert pg_server.verifier_matches(cat.roles["shop"], PW)
    assert cat.dbs["shop"] == ["shop", "{shop=CTc/shop}"]   # CONNECT revoked from PUBLIC
    assert not any(PW in " ".join(c) for c in host.commands), "the password on a command line"
    assert not any(PW in s for s in cat.sql), "the plaintext password in SQL"
    hba = (root / "etc/fdeploy/postgres/pg_hba.conf").read_text()
    assert "hostssl shop  shop  10.0.0.5/32  scram-sha-256" in hba
    assert not re.search(r"^(host|hostssl|local)\s+all\s+all", hba, re.M)
    assert cat.settings["listen_addresses"] == "*" and cat.settings["hba_file"] == "/etc/fdeploy/postgres/pg_hba.conf"
    assert cat.restarts == 1   # the listen address and the hba file: in force after a restart only
    entry = json.loads((root / "etc/fdeploy/postgres/apps/shop.json").read_text())
    assert PW not in json.dumps(entry) and oct((root / "etc/fdeploy/postgres/apps").stat().st_mode & 0o777) == "0o700"


def test_a_re_run_changes_nothing_a_new_password_only_the_role(server):
    host, cat, _ = server
    pg_server.pg_app(host, app(), print, 5)
    before = (cat.reloads, cat.restarts, len(cat.sql))
    assert pg_server.pg_app(host, app(), print, 5)["changed"] is False
    assert (cat.reloads, cat.restarts) == before[:2]
    assert not any(s.startswith(("CREATE", "ALTER", "REVOKE")) for s in cat.sql[before[2]:])
    assert pg_server.pg_app(host, app(password="another-password-98765"), print, 5)["changed"]
    assert pg_server.verifier_matches(cat.roles["shop"], "another-password-98765")
    assert cat.sql[-1].startswith("SELECT") and any(s.startswith("ALTER ROLE \"shop\" LOGIN PASSWORD 'SCRAM-SHA-256$") for s in cat.sql)


def test_two_apps_each_reach_only_their_own_database(server):
    host, cat, root = server
    pg_server.pg_app(host, app(), print, 5)
    pg_server.pg_app(host, app("blog", "blog", "blog", allow="", local=True), print, 5)
    hba = (root / "etc/fdeploy/postgres/pg_hba.conf").read_text()
    rules = [l.split() for l in hba.splitlines() if l and not l.startswith("#")]
    assert rules == [["local", "all", "postgres", "peer"],
                     ["host", "blog", "blog", "127.0.0.1/32", "scram-sha-256"],
                     ["hostssl", "shop", "shop", "10.0.0.5/32", "scram-sha-256"]]
    with pytest.raises(AgentError, match=r"app 'shop' on this database server uses that database already.*database\.name"):
        pg_server.pg_app(host, app("other", "shop", "other"), print, 5)
    with pytest.raises(AgentError, match=r"uses that role already"):
        pg_server.pg_app(host, app("other", "other", "shop"), print, 5)


def test_a_database_another_role_owns_is_refused(server):
    host, cat, _ = server
    cat.dbs["shop"] = ["someone", ""]
    with pytest.raises(AgentError, match=r"database shop belongs to role someone, not shop: set another flask-deploy:database\.name"):
        pg_server.pg_app(host, app(), print, 5)


@pytest.mark.parametrize("change,message", [
    ({"DB": "Bad"}, r"flask-deploy:database\.name"),
    ({"ROLE": "postgres"}, r"flask-deploy:database\.user"),
    ({"ROLE": "pg_monitor"}, r"flask-deploy:database\.user"),
    ({"ALLOW": "10.0.0.5/0 x"}, r"flask-deploy:server\.host"),
    ({"PASSWORD": "short"}, r"flask-deploy:databasePassword"),
    ({"PASSWORD": "has a space in it 12345"}, r"flask-deploy:databasePassword"),
    ({"APP": "../x"}, r"flask-deploy:appName"),
])
def test_bad_input_is_refused_before_anything_changes(server, change, message):
    host, cat, root = server
    with pytest.raises(AgentError, match=message):
        pg_server.pg_app(host, dict(app(), **change), print, 5)
    assert cat.sql == [] and not (root / "etc/fdeploy/postgres/pg_hba.conf").exists()


def test_status_reports_version_running_and_size(server):
    host, cat, _ = server
    pg_server.pg_app(host, app(), print, 5)
    cat.psql = lambda sql: "8057327" if "pg_database_size" in sql and "'shop'" in sql else ""
    assert pg_server.pg_status(host, {"APP": "shop"}, print, 5) == {
        "ok": True, "installed": True, "version": "15", "running": True, "exists": True, "sizeBytes": 8057327}
    assert pg_server.pg_status(host, {"APP": "blog"}, print, 5)["exists"] is False   # no entry: no database of its own
    host._which = lambda c: None
    assert pg_server.pg_status(host, {"APP": "shop"}, print, 5)["installed"] is False


def test_settings_listen_only_on_localhost_without_remote_apps(server):
    host, cat, _ = server
    pg_server.pg_app(host, app(allow="", local=True), print, 5)
    assert cat.settings["listen_addresses"] == "localhost" and cat.settings["ssl"] == "on"
    assert cat.restarts == 1 and cat.reloads == 0   # hba_file changed: a restart (no reload besides)
    pg_server.pg_app(host, app("blog", "blog", "blog", allow="10.0.0.7"), print, 5)
    assert cat.settings["listen_addresses"] == "*" and cat.restarts == 2


def test_a_new_app_on_a_server_another_apps_backup_covers_is_refused(server):
    # pgBackRest backs up and restores the whole cluster: app shop's restore would rewind blog's database too
    host, cat, root = server
    pg_server.pg_app(host, app(), print, 5)
    (root / "etc/fdeploy/postgres/backup.json").write_text('{"app": "shop"}')
    with pytest.raises(AgentError) as e:
        pg_server.pg_app(host, app("blog", "blog", "blog"), print, 5)
    first = str(e.value).splitlines()[0]
    assert "'blog'" in first and "'shop'" in first and "flask-deploy:backup" in first and "database.host" in first and len(first) < 160
    assert "blog" not in cat.dbs and "blog" not in cat.roles and not (root / "etc/fdeploy/postgres/apps/blog.json").exists()
    assert pg_server.pg_app(host, app(), print, 5)["changed"] is False   # the backed-up app itself goes on
