"""The release history: APP_ROOT/history.jsonl, one JSON object a line per activation, newest last
(root-owned, 0644 in the root-owned APP_ROOT, readable by the app's group like the code):

    {"time": "2026-12-06T20:00:00Z", "release": "<12 hex>", "status": "live"|"failed",
     "strategy": "restart"|"rolling"|"blue-green"|"canary"|"rollback", "schema": <int>|null}

`schema` is the version of the root-owned migration set in force when it went live (a rollback's:
the one its release had), never read from the app's database. Versions before this file kept
history.log (`<time> <id> <status> strategy=<s> schema=<n>`): the first record converts it and
keeps the old file as history.log.converted. Readers read history.log while no record has run."""
import json
import os
import re
import time
from typing import Any, Dict, List, Optional

from . import app as apps
from .app import App
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .host import Host

FILE, LEGACY = "history.jsonl", "history.log"
MODE = 0o644
RID = re.compile(r"[0-9a-f]{12}")
STRATEGIES = ("restart", "rolling", "blue-green", "canary")
LEGACY_LINE = re.compile(r"(\S+) ([0-9a-f]{12}) (live|failed) strategy=(\S+) schema=(\d*)")

Entry = Dict[str, Any]


def _entry(time_: str, release: str, status: str, strategy: str, schema: Optional[int]) -> Entry:
    return {"time": time_, "release": release, "status": status, "strategy": strategy, "schema": schema}


def _parse_jsonl(raw: bytes) -> List[Entry]:
    out = []
    for line in raw.decode(errors="replace").splitlines():
        try:
            e = json.loads(line)
        except ValueError:   # a line cut short by a crash
            continue
        if (isinstance(e, dict) and isinstance(e.get("release"), str) and RID.fullmatch(e["release"])
                and e.get("status") in ("live", "failed")):
            schema = e.get("schema")
            out.append(_entry(str(e.get("time", "")), e["release"], e["status"], str(e.get("strategy", "")),
                              schema if isinstance(schema, int) and not isinstance(schema, bool) else None))
    return out


def _parse_legacy(raw: bytes) -> List[Entry]:
    out = []
    for line in raw.decode(errors="replace").splitlines():
        m = LEGACY_LINE.fullmatch(line.strip())
        if m:
            out.append(_entry(m[1], m[2], m[3], m[4], int(m[5]) if m[5] else None))
    return out


def _encode(entries: List[Entry]) -> bytes:
    return b"".join((json.dumps(e, sort_keys=True) + "\n").encode() for e in entries)


def entries(host: Host, app: App) -> List[Entry]:
    """Every activation, oldest first."""
    raw = read_regular(host.path("%s/%s" % (app.root, FILE)))
    if raw is not None:
        return _parse_jsonl(raw)
    return _parse_legacy(read_regular(host.path("%s/%s" % (app.root, LEGACY))) or b"")


def convert(host: Host, app: App, log: Any) -> None:
    """history.log -> history.jsonl, once; the old file is kept renamed. Safe to re-run after a crash
    at any point: lines of a history.log that are already in history.jsonl are not added twice (and a
    history.log an older version wrote after the conversion is added, then kept renamed too)."""
    legacy = host.path("%s/%s" % (app.root, LEGACY))
    raw = read_regular(legacy)
    if raw is None:
        return
    path = host.path("%s/%s" % (app.root, FILE))
    have = _parse_jsonl(read_regular(path) or b"")
    new = [e for e in _parse_legacy(raw) if e not in have]
    write_atomic(path, _encode(have + new), MODE)
    kept, n = legacy + ".converted", 1
    while os.path.lexists(kept):
        n += 1
        kept = "%s.converted.%d" % (legacy, n)
    os.rename(legacy, kept)
    log("history: converted %s (%d entries) to %s; the old file is kept as %s"
        % (LEGACY, len(new), FILE, os.path.basename(kept)))


def append(host: Host, app: App, entry: Entry, log: Any) -> None:
    """ENTRY as the newest line (converting history.log first). Never through a link; a line a
    crash cut short stays a line of its own."""
    convert(host, app, log)
    path = host.path("%s/%s" % (app.root, FILE))
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
    except OSError as e:
        raise AgentError("cannot write the release history %s/%s (%s): it must be a regular file owned by root; move it away and deploy again"
                         % (app.root, FILE, e.strerror))
    try:
        size = os.fstat(fd).st_size
        last = os.pread(fd, 1, size - 1) if size else b"\n"
        data = (b"" if last == b"\n" else b"\n") + _encode([entry])
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def live_ids(history: List[Entry]) -> List[str]:
    """The releases that went live, newest first, each once."""
    out: List[str] = []
    for e in reversed(history):
        if e["status"] == "live" and e["release"] not in out:
            out.append(e["release"])
    return out


def schema_of(history: List[Entry], release: str) -> Optional[int]:
    """The schema version RELEASE last went live with (None: it never did)."""
    for e in reversed(history):
        if e["release"] == release and e["status"] == "live":
            return e["schema"]
    return None


def live_schema(history: List[Entry]) -> Optional[int]:
    """The schema version of the newest activation that went live."""
    return next((e["schema"] for e in reversed(history) if e["status"] == "live"), None)


def rollback_candidates(history: List[Entry]) -> List[str]:
    """Where a rollback steps back to, newest first. The history is a stack of deploys: a deploy
    pushes its release, a rollback pops back down to its own. So a second rollback goes further back
    (C -> B -> A), never back to the release it just left."""
    stack: List[str] = []
    for e in history:
        if e["status"] != "live":
            continue
        if e["strategy"] == "rollback":
            while stack and stack[-1] != e["release"]:
                stack.pop()
            if not stack:
                stack.append(e["release"])
        elif not stack or stack[-1] != e["release"]:
            stack.append(e["release"])
    return stack[-2::-1]


def is_kept(host: Host, app: App, release: str) -> bool:
    return read_regular(host.path("%s/releases/%s/.fdeploy-release.json" % (app.root, release))) is not None


def schema_of_migrations(host: Host, app: App) -> int:
    """The highest NNNN of the NNNN_*.up.sql files of the migration set in force (0: none)."""
    try:
        names = os.listdir(host.path(app.root + "/migrations/current"))
    except OSError:
        return 0
    return max([int(n[:4]) for n in names if re.fullmatch(r"[0-9]{4}_.*\.up\.sql", n)] or [0])


def public(e: Entry) -> Dict[str, Any]:
    """An entry as the stack's releaseHistory output shows it."""
    return {"time": e["time"], "releaseId": e["release"], "status": e["status"],
            "schemaVersion": "" if e["schema"] is None else str(e["schema"])}


def _release(params: Dict[str, Any], key: str = "RELEASE_ID") -> str:
    rid = str(params.get(key, ""))
    if not RID.fullmatch(rid):
        raise AgentError("bad release id %r (expected 12 hex characters, see the releaseHistory output)" % rid)
    return rid


def read_verb(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`history`: what the switch asks of the history. params: APP, RELEASE_ID, KEEP_RELEASES.
    schema: RELEASE_ID's ("" if it never went live); keep: the newest KEEP_RELEASES releases that went
    live (prune keeps them); lastHealthy: the folder of the newest release that went live, other than
    RELEASE_ID and still installed ("" if none: a failed release is never a fallback); liveSchema:
    the schema of the newest live activation ("" if none)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = _release(params)
    keep = str(params.get("KEEP_RELEASES", "0"))
    history = entries(host, app)
    ids = live_ids(history)
    healthy = next((i for i in ids if i != rid and is_kept(host, app, i)), "")
    schema, live = schema_of(history, rid), live_schema(history)
    return {"schema": "" if schema is None else str(schema),
            "keep": ids[:int(keep)] if keep.isdigit() else [],
            "lastHealthy": "%s/releases/%s" % (app.root, healthy) if healthy else "",
            "liveSchema": "" if live is None else str(live)}


def _record(host: Host, params: Dict[str, Any], log: Any, status: str) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = _release(params)
    history = entries(host, app)
    if params.get("ROLLBACK"):
        strategy, schema = "rollback", schema_of(history, rid)
    else:
        strategy, schema = str(params.get("STRATEGY", "")), schema_of_migrations(host, app)
        if strategy not in STRATEGIES:
            raise AgentError("bad strategy %r (flask-deploy:strategy: one of %s)" % (strategy, ", ".join(STRATEGIES)))
    entry = _entry(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rid, status, strategy, schema)
    append(host, app, entry, log)
    return {"entry": entry, "history": [public(e) for e in (history + [entry])[-10:]]}


def record_live(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`history-live`: the activation (APP, RELEASE_ID, STRATEGY, ROLLBACK) went live. Its result is
    the activation step's: the history after it (the newest 10, newest last)."""
    return _record(host, params, log, "live")


def record_failed(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`history-failed`: the activation failed."""
    return _record(host, params, log, "failed")


def rollback_plan(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`rollback-plan` (`fdeploy rollback`): where a rollback goes; changes nothing.
    params: APP, TO (a release id, or "" for one step back through the healthy history). Result: the
    release to pin, the schema version it ran with, and the live release."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    current_link = host.path(app.root + "/current")
    current = os.path.basename(os.path.realpath(current_link)) if os.path.islink(current_link) else ""
    history = entries(host, app)
    if not history or not current:
        raise AgentError("nothing to roll back: no live release yet (pulumi up deploys one)")
    try:
        kept = " ".join(sorted(os.listdir(host.path(app.root + "/releases"))))
    except OSError:
        kept = ""
    if params.get("TO"):
        target = _release(params, "TO")
        if schema_of(history, target) is None:
            raise AgentError("release %s never went live on this server (fdeploy releases lists those that did)" % target)
    else:
        target = next((i for i in rollback_candidates(history) if i != current and is_kept(host, app, i)), "")
        if not target:
            raise AgentError("no earlier healthy release is kept on the server (kept: %s); fdeploy releases lists them" % kept)
    if target == current:
        raise AgentError("release %s is already live (fdeploy releases)" % target)
    if not is_kept(host, app, target):
        raise AgentError("release %s is not kept on the server (kept: %s); fdeploy releases lists them" % (target, kept))
    return {"release": target, "schema": schema_of(history, target), "live": current}
