#!/usr/bin/env python3
"""bench/report.py RAW.json OUTDIR — results.md (tables) and chart.png from bench/bench.ts's raw.json.

Run by bench/run.sh with the benchmark venv's Python (matplotlib). Every number is computed here
from the per-request rows in raw.json, so the report can be rebuilt from raw.json alone.
"""
import json
import math
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"restart": "Pulumi · restart", "rolling": "Pulumi · rolling", "blue-green": "Pulumi · blue-green",
          "canary": "Pulumi · canary", "ansible": "Ansible (conventional)", "ansible-tuned": "Ansible (tuned)",
          "docker-blue-green": "Pulumi · Docker runtime · blue-green", "docker-rolling": "Pulumi · Docker runtime · rolling",
          "fleet": "Pulumi · fleet (3 hosts, rolling)"}
COLORS = {"restart": "#e49b0f", "rolling": "#3a7dc9", "blue-green": "#2e9d5b", "canary": "#8a5cc2", "ansible": "#c23b3b",
          "ansible-tuned": "#e0736e", "docker-blue-green": "#1b6e8f", "docker-rolling": "#7a4fb5", "fleet": "#2b5f9e"}


def ok(outcome):
    return isinstance(outcome, int) and 200 <= outcome < 300


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1)]


def pooled(steps):
    """Requests, failures by kind, latencies (sorted) of the load windows of these steps."""
    lat, failures = [], {}
    for s in steps:
        for _t, ms, outcome in s["load"]["requests"]:
            lat.append(ms)
            if not ok(outcome):
                failures[str(outcome)] = failures.get(str(outcome), 0) + 1
    lat.sort()
    return {"requests": len(lat), "failed": sum(failures.values()), "failures": failures,
            "p99": percentile(lat, 99), "max": lat[-1] if lat else 0.0}


def summarize(target):
    steps = target["steps"]
    deploys = [s for s in steps if s["kind"] == "deploy"]
    rollbacks = [s for s in steps if s["kind"] == "rollback"]
    forwards = [s for s in steps if s["kind"] == "forward"]
    d = pooled(deploys)
    secs = [s["seconds"] for s in deploys if s["status"] == 0]
    rb_secs = [s["seconds"] for s in rollbacks if s["status"] == 0]
    rbf = pooled(rollbacks + forwards)
    return {
        "id": target["id"], "deploys": len(deploys), "deploys_ok": sum(s["status"] == 0 for s in deploys),
        "verified": sum(bool(s["verified"]) for s in deploys), **d,
        "deploy_median": statistics.median(secs) if secs else None, "deploy_max": max(secs) if secs else None,
        "rollbacks": len(rollbacks), "rollback_median": statistics.median(rb_secs) if rb_secs else None,
        "rollbacks_verified": sum(bool(s["verified"]) for s in rollbacks),
        "forward_median": statistics.median([s["seconds"] for s in forwards]) if forwards else None,
        "rb_requests": rbf["requests"], "rb_failed": rbf["failed"], "rb_failures": rbf["failures"],
        "error": target.get("error"), "initial": target.get("initialSeconds"),
        "retried": sum(s["load"].get("retriedClosedConnections", 0) for s in deploys + rollbacks + forwards),
    }


def fmt_s(v):
    return "—" if v is None else f"{v:.1f}"


def fmt_ms(v):
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def kinds(failures):
    return ", ".join(f"{k}×{v}" for k, v in sorted(failures.items(), key=lambda kv: -kv[1])) or "—"


def loads(xs):
    return " / ".join(f"{x:.2f}" for x in xs)


def servers(xs):
    return f"{len(xs)}" + (f" ({', '.join(xs)})" if xs else "")


def request_load(p):
    """The request load and counts a run used (its parameters)."""
    n, k = p["deploysPerTarget"], p["rollbacksPerStrategy"]
    return (f"request load {p['rateRps']} requests/s over {p['connections']} connections, {n} deploy{'s' * (n != 1)}, "
            f"{k} rollback{'s' * (k != 1)}")


def provenance(what, commit, date, run, params=None):
    """One line: commit, date, the 1/5/15-min load averages and the other test servers at start and end (issue #27);
    PARAMS: the request load it ran with, for a target merged from another run."""
    line = f"- **{what}**: commit `{(commit or '?')[:12]}`, {date[:16].replace('T', ' ')} UTC; "
    if params:
        line += (request_load(params) if isinstance(params, dict) else f"request load {params}") + "; "
    if run.get("loadAvgAtStart") and run.get("loadAvgAtEnd"):
        line += f"load average (1 / 5 / 15 min) {loads(run['loadAvgAtStart'])} at start, {loads(run['loadAvgAtEnd'])} at end; "
    else:
        la = [st["loadAvg1"] for st in run.get("steps", []) if "loadAvg1" in st]
        line += ("load average at start and end: not recorded (written before issue #27)"
                 + (f"; mean 1-min load after its steps {statistics.mean(la):.1f}; " if la else "; "))
    if "otherServersAtStart" in run:
        line += (f"other test servers up: {servers(run['otherServersAtStart'])} at start"
                 + (f", {servers(run['otherServersAtEnd'])} at end" if "otherServersAtEnd" in run else "") + ".")
    else:
        others = sorted({o for st in run.get("steps", []) for o in st.get("otherServers", [])})
        line += f"other test servers up during its steps: {servers(others)}."
    return line


def write_markdown(raw, rows, out):
    m, p, src = raw["machine"], raw["parameters"], raw["source"]
    L = []
    L.append("# Downtime benchmark: flask-deploy strategies vs. Ansible (a conventional and a tuned playbook)\n")
    L.append(f"Run {raw['date'][:19].replace('T', ' ')} UTC, {raw.get('totalMinutes', '?')} min, "
             f"project commit `{src['commit'][:12]}` "
             + ("(git HEAD; uncommitted edits elsewhere in the tree were not benchmarked). " if src["mode"] == "head"
                else "(the working tree as it was, including uncommitted edits). ")
             + 
             "How it is measured and how to read it: [bench/README.md](../README.md).\n")
    L.append("Provenance (what ran, when, on how busy a machine):\n")
    L.append(provenance("the run", src.get("commit"), raw["date"], raw))
    for t in raw["targets"]:
        if t.get("runDate") and t["runDate"][:16] != raw["date"][:16]:
            L.append(provenance(f"{LABELS.get(t['id'], t['id'])} (run separately, merged)", (t.get("source") or {}).get("commit"),
                                t["runDate"], t, t.get("parameters") or "not recorded"))
    L.append("")
    L.append("| strategy / tool | deploys | requests | failed | max latency | p99 latency | deploy s (median / max) "
             "| rollback s (median, n) | failed during rollbacks + roll-forwards |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        deploys = f"{r['deploys_ok']}" + ("" if r["deploys_ok"] == r["deploys"] == r["verified"] else
                                           f" ({r['deploys']} run, {r['verified']} verified)")
        failed = f"**{r['failed']}**" + (f" ({100 * r['failed'] / r['requests']:.1f} %)" if r["failed"] else "")
        rb = f"{fmt_s(r['rollback_median'])} ({r['rollbacks']})" if r["rollbacks"] else "n/a"
        rbf = f"{r['rb_failed']} of {r['rb_requests']}" if r["rollbacks"] else "n/a"
        L.append(f"| {LABELS.get(r['id'], r['id'])} | {deploys} | {r['requests']} | {failed} | {fmt_ms(r['max'])} "
                 f"| {fmt_ms(r['p99'])} | {fmt_s(r['deploy_median'])} / {fmt_s(r['deploy_max'])} | {rb} | {rbf} |")
    L.append("")
    L.append("- **requests / failed / latency**: all requests of the load windows of the deploys (each window = "
             "the deploy ± 1 s); failed = non-2xx or socket error; latency from when a request was due to the end "
             "of its response (failed requests included).")
    L.append("- **deploy s**: wall time of `pulumi up --yes --skip-preview` / `ansible-playbook`, seen from this "
             "machine. **rollback s**: wall time of `npx ts-node scripts/rollback.ts`; each rollback is followed by a "
             "roll-forward `pulumi up` (timed separately in raw.json, counted neither as a deploy nor as a rollback). "
             "Ansible has no rollback command (n/a).")
    failure_notes = [f"{LABELS.get(r['id'], r['id'])}: {kinds(r['failures'])}" for r in rows if r["failed"]]
    if failure_notes:
        L.append("- **failure kinds** during deploys: " + "; ".join(failure_notes) + ".")
    rb_notes = [f"{LABELS.get(r['id'], r['id'])}: {kinds(r['rb_failures'])}" for r in rows if r["rb_failed"]]
    if rb_notes:
        L.append("- **failure kinds** during rollbacks + roll-forwards: " + "; ".join(rb_notes) + ".")
    retried = [f"{LABELS.get(r['id'], r['id'])} {r['retried']}" for r in rows if r["retried"]]
    if retried:
        L.append("- **keep-alive retries**: GETs sent once more on a new connection because nginx closed their idle "
                 "keep-alive connection before any response (it does at every reload; browsers resend such a GET the "
                 "same way, RFC 9110 §9.2.2); the retry's latency counts from when the request was due, and a failed "
                 "retry counts as failed: " + "; ".join(retried) + " (deploys, rollbacks and roll-forwards).")
    merged = [t for t in raw["targets"] if t.get("runDate") and t["runDate"][:16] != raw["date"][:16]]
    for t in merged:
        src_t = t.get("source") or {}
        L.append(f"- **{LABELS.get(t['id'], t['id'])}** ran separately ({t['runDate'][:19].replace('T', ' ')} UTC, project "
                 f"commit `{src_t.get('commit', '?')[:12]}`, `bench/run.sh --only {t['id']} --merge`) and was merged into "
                 "this run's results; the other rows are from the run above.")
    for r in rows:
        if r["error"]:
            L.append(f"- **{r['id']} stopped early**: {r['error'].splitlines()[0]}")
        if r["rollbacks"] and r["rollbacks_verified"] != r["rollbacks"]:
            L.append(f"- {r['id']}: {r['rollbacks'] - r['rollbacks_verified']} rollback(s) did not serve the expected "
                     "previous release/schema afterwards (see raw.json).")
    L.append("")
    L.append("![failed requests, latency and deploy time per strategy](chart.png)\n")

    aborts = [t for t in raw["targets"] if t.get("canaryAbort")]
    if aborts:
        L.append("## Canary: a release that fails 30 % of requests\n")
        L.append("After its deploys, the canary target deploys a release that answers 500 to 30 % of the requests "
                 "that come through nginx (its health checks pass), under the same load. The canary must abort at its "
                 "first step, and the failed requests users saw must be at most that step's share of its traffic.\n")
        L.append("| target | deploy exit | aborted at step | step: requests to new (5xx) / to old | bound: step % × step traffic "
                 "| failed requests users saw (of all in the window) | within bound | old release serving after |")
        L.append("|---|---:|---|---:|---:|---:|---|---|")
        for t in aborts:
            a = t["canaryAbort"]
            sm = a["load"]["summary"]
            bound = "?" if a["bound"] is None else f"{a['bound']:.1f}"
            L.append(f"| {LABELS.get(t['id'], t['id'])} | {a['status']} ({a['seconds']:.1f} s) | {a['abortedAtStep'] or '—'} "
                     f"({a['stepPercent'] if a['stepPercent'] is not None else '?'} %) | {a['stepNewRequests']} ({a['stepNew5xx']}) / "
                     f"{a['stepOldRequests']} | {bound} | **{a['usersFailed']}** (of {sm['requests']}) | "
                     f"{'yes' if a['withinBound'] else 'NO'} | {'yes' if a['oldReleaseServing'] else 'NO'} |")
        L.append("")

    # per deploy
    targets = raw["targets"]
    L.append("## Per deploy\n")
    L.append("Wall seconds / failed requests / max latency of each deploy. The change of deploy n is the same for "
             "every target.\n")
    L.append("| n | change | " + " | ".join(LABELS.get(t["id"], t["id"]) for t in targets) + " |")
    L.append("|---:|---|" + "---:|" * len(targets))
    by_n = {}
    for t in targets:
        for s in t["steps"]:
            if s["kind"] == "deploy":
                by_n.setdefault(s["n"], {})[t["id"]] = s
    for n in sorted(by_n):
        change = next(iter(by_n[n].values())).get("change", {})
        desc = "code" + "".join(f"; {k}: {v}" for k, v in change.items() if k != "code")
        cells = []
        for t in targets:
            s = by_n[n].get(t["id"])
            if not s:
                cells.append("—")
                continue
            sm = s["load"]["summary"]
            cells.append(f"{s['seconds']:.1f} s / {sm['failed']} / {fmt_ms(sm['maxMs'])}" + ("" if s["status"] == 0 else " FAILED"))
        L.append(f"| {n} | {desc} | " + " | ".join(cells) + " |")
    L.append("")

    L.append("## Machine and parameters\n")
    L.append(f"- Machine: {m['nproc']} CPUs ({m['cpuModel']}), {m['memoryGiB']} GiB memory, Linux {m['kernel']}; "
             f"load average at start {', '.join(f'{x:.2f}' for x in raw['loadAvgAtStart'])}"
             + (f", at end {', '.join(f'{x:.2f}' for x in raw['loadAvgAtEnd'])}" if raw.get("loadAvgAtEnd") else "")
             + (f"; other (non-bench) test servers running on the machine at start: "
                f"{', '.join(raw['otherServersAtStart']) or 'none'}, at end: {', '.join(raw.get('otherServersAtEnd') or []) or 'none'}"
                if "otherServersAtStart" in raw else "") + ".")
    contention = []
    for t in targets:
        la = [st["loadAvg1"] for st in t["steps"] if "loadAvg1" in st]
        others = sorted({o for st in t["steps"] for o in st.get("otherServers", [])})
        if la:
            contention.append(f"{t['id']} {statistics.mean(la):.1f}" + (f" (other test servers up: {', '.join(others)})" if others else ""))
    if contention:
        L.append("- Machine load during each target (mean 1-min load average right after its steps; it includes the "
                 "benchmark's own deploy tool, load generator and server, so compare targets: a clearly higher value, or "
                 "other test servers up, means other work shared the 2 CPUs and slowed deploys): " + "; ".join(contention) + ".")
    L.append(f"- Tools: Pulumi {m['pulumi']}, Node {m['node']}, ansible-core {m['ansibleCore']}. Servers: Debian bookworm "
             "test servers (systemd-nspawn, tests/servers/testserver.sh), one fresh server per strategy/tool"
             + (f", {targets[0]['serverInfo'].get('nginx', '')}, {targets[0]['serverInfo'].get('python', '')}, "
                f"gunicorn {targets[0]['serverInfo'].get('gunicorn', '')} with {p['workers']} workers"
                if targets and targets[0].get("serverInfo") else "") + ".")
    L.append(f"- Load: {p['rateRps']} requests/s at a fixed rate (open loop), over at most {p['connections']} keep-alive "
             f"connections, alternating {', '.join(p['paths'])} (both read the app's database: SQLite"
             + (", the fleet's PostgreSQL through its balancer" if any(t["id"] == "fleet" for t in targets) else "")
             + f"), {p['requestTimeoutSeconds']} s "
             f"request timeout, during {p['loadWindow']}.")
    L.append(f"- Deploys: {p['deploysPerTarget']} per strategy/tool after one unmeasured initial deploy. Changes: {p['changes']}.")
    L.append(f"- Rollbacks: {p['rollbacksPerStrategy']} per Pulumi strategy, {p['rollbacks']}.")
    L.append("- Initial (unmeasured) deploy: " + ", ".join(f"{t['id']} {fmt_s(t.get('initialSeconds'))} s" for t in targets) + ".")
    (out / "results.md").write_text("\n".join(L) + "\n")


def write_chart(raw, rows, out):
    ids = [r["id"] for r in rows]
    names = [LABELS.get(i, i).replace(" · ", "\n").replace(" (", "\n(") for i in ids]
    colors = [COLORS.get(i, "#777") for i in ids]
    x = list(range(len(rows)))
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    k = raw["parameters"]["deploysPerTarget"]
    fig.suptitle(f"Downtime benchmark — {k} deploys per strategy under {raw['parameters']['rateRps']} req/s "
                 f"({raw['date'][:10]}, {raw['machine']['nproc']} CPUs)", fontsize=13, fontweight="bold")

    ax = axes[0][0]
    failed = [r["failed"] for r in rows]
    bars = ax.bar(x, failed, color=colors)
    for b, r in zip(bars, rows):
        pct = f"\n({100 * r['failed'] / r['requests']:.1f} % of {r['requests']})" if r["requests"] and r["failed"] else ""
        ax.annotate(f"{r['failed']}{pct}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=10, xytext=(0, 3), textcoords="offset points")
    ax.set_title("Failed requests during the deploys (non-2xx + socket errors)")
    ax.set_ylim(0, max(failed + [1]) * 1.35)
    ax.set_xticks(x, names, fontsize=9)
    ax.set_ylabel("requests")

    ax = axes[0][1]
    w = 0.38
    p99 = [r["p99"] for r in rows]
    mx = [r["max"] for r in rows]
    b1 = ax.bar([i - w / 2 for i in x], p99, w, label="p99", color=colors, alpha=0.55)
    b2 = ax.bar([i + w / 2 for i in x], mx, w, label="max", color=colors)
    for b in list(b1) + list(b2):
        ax.annotate(fmt_ms(b.get_height()), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    if any(mx):
        ax.set_yscale("log")
        ax.set_ylim(max(1, min(p99 + mx) / 2), max(mx + [10]) * 3)
    ax.set_title("Latency during the deploys: p99 (light) and max (dark), log scale")
    ax.set_ylabel("ms")
    ax.set_xticks(x, names, fontsize=9)

    ax = axes[1][0]
    w = 0.27
    med = [r["deploy_median"] or 0 for r in rows]
    dmax = [r["deploy_max"] or 0 for r in rows]
    rb = [r["rollback_median"] or 0 for r in rows]
    series = [(med, "deploy median", 0.55), (dmax, "deploy max", 1.0), (rb, "rollback median", 0.25)]
    for j, (vals, label, alpha) in enumerate(series):
        bs = ax.bar([i + (j - 1) * w for i in x], vals, w, label=label, color=colors, alpha=alpha,
                    hatch="//" if j == 2 else None, edgecolor="black" if j == 2 else None, linewidth=0.5)
        for b, v in zip(bs, vals):
            ax.annotate("n/a" if (j == 2 and not v) else f"{v:.1f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_title("Wall time: deploy median, deploy max, rollback median (hatched)")
    ax.set_ylabel("seconds")
    ax.set_xticks(x, names, fontsize=9)
    ax.set_ylim(0, max(med + dmax + rb + [1]) * 1.2)

    # latency over time of each target's worst deploy (most failures, then highest max latency)
    ax = axes[1][1]
    for t in raw["targets"]:
        deploys = [s for s in t["steps"] if s["kind"] == "deploy"]
        if not deploys:
            continue
        worst = max(deploys, key=lambda s: (s["load"]["summary"]["failed"], s["load"]["summary"]["maxMs"]))
        start = worst["load"]["deployStartMs"] or 0
        pts = worst["load"]["requests"]
        c = COLORS.get(t["id"], "#777")
        ax.plot([(p[0] - start) / 1000 for p in pts], [max(p[1], 0.5) for p in pts], ".", ms=2.5, color=c,
                label=f"{LABELS.get(t['id'], t['id'])} (deploy {worst['n']})")
        bad = [p for p in pts if not ok(p[2])]
        if bad:
            ax.plot([(p[0] - start) / 1000 for p in bad], [max(p[1], 0.5) for p in bad], "x", ms=6, color=c)
    if ax.lines:
        ax.set_yscale("log")
        ax.set_ylim(top=ax.get_ylim()[1] * 8)
        ax.legend(fontsize=8, loc="upper left", markerscale=3, ncol=2, framealpha=0.9)
    ax.set_xlabel("seconds since the deploy started (× = failed request)")
    ax.set_ylabel("latency, ms")
    ax.set_title("Each target's worst deploy: every request's latency")
    ax.grid(alpha=0.3)

    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out / "chart.png", dpi=110)


def main():
    raw_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    raw = json.loads(raw_path.read_text())
    rows = [summarize(t) for t in raw["targets"]]
    write_markdown(raw, rows, out)
    write_chart(raw, rows, out)
    for r in rows:
        print(f"{r['id']:>10}: deploys {r['deploys_ok']}/{r['deploys']} verified {r['verified']}, requests {r['requests']}, "
              f"failed {r['failed']}, p99 {fmt_ms(r['p99'])}, max {fmt_ms(r['max'])}, deploy median {fmt_s(r['deploy_median'])} s, "
              f"rollback median {fmt_s(r['rollback_median'])} s" + (f"  ERROR: {r['error'].splitlines()[0]}" if r["error"] else ""))
    print(f"wrote {out / 'results.md'} and {out / 'chart.png'}")


if __name__ == "__main__":
    main()
