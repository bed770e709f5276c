"""canary.py — the numbers of one canary step, read from the app's nginx upstream log.

    canary.py LOG OFFSET OLD_SOCKET NEW_SOCKET MAX_ERROR_RATE MAX_P95_MS MIN_REQUESTS MODE

LOG lines (log_format fdeploy_<app>_upstream, components/nginx-site.ts), tab-separated:
    $msec  $status  $upstream_addr  $upstream_status  $upstream_response_time  $request_time
Only bytes from OFFSET on count: the requests logged since the step began. A request is the new
release's when the slot that answered it (the last address nginx tried) is NEW_SOCKET, the old
one's when it is OLD_SOCKET or the live link (requests that began before the split). Requests
nginx answered itself (no upstream: maintenance, static files) are not counted.

Prints one line: each release's requests, 5xx answers (share) and p95 upstream response time.
Exit status (MODE final: the step's verdict; MODE early: only a clear error-rate trip):
    0  the gates pass (early: nothing tripped yet)
    2  fewer than MIN_REQUESTS requests on the new release (final only)
    3  the new release's 5xx share is over MAX_ERROR_RATE
    4  the new release's p95 is over MAX_P95_MS
"""
import math
import os
import sys


def last(field):
    # "a, b" (nginx tried the next server) or "a : b" (an internal redirect): the last one answered
    return field.replace(" : ", ", ").split(", ")[-1].strip()


def ms(seconds):
    try:
        return float(seconds) * 1000.0
    except ValueError:
        return None


def p95(values):
    if not values:
        return None
    values = sorted(values)
    return values[max(0, math.ceil(0.95 * len(values)) - 1)]


def main():
    log, offset, old, new, max_err, max_p95, min_req, mode = sys.argv[1:9]
    offset, max_err, max_p95, min_req = int(offset), float(max_err), float(max_p95), int(min_req)
    live = os.path.join(os.path.dirname(old), "live.sock")
    stats = {"new": [0, 0, []], "old": [0, 0, []]}
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    # a line still being written has no newline yet: the next read sees it
    for raw in data.split(b"\n")[:-1]:
        fields = raw.decode("utf-8", "replace").split("\t")
        if len(fields) < 6:
            continue
        addr = last(fields[2]).removeprefix("unix:")
        who = "new" if addr == new else "old" if addr in (old, live) else None
        if who is None:
            continue
        s = stats[who]
        s[0] += 1
        if fields[1].startswith("5"):   # what the user got
            s[1] += 1
        t = ms(last(fields[4]))
        if t is None:
            t = ms(fields[5])
        if t is not None:
            s[2].append(t)

    def text(who):
        n, e, times = stats[who]
        rate = f"{100.0 * e / n:.1f} %" if n else "-"
        q = p95(times)
        return f"{who} {n} requests, {e} 5xx ({rate}), p95 {'-' if q is None else f'{q:.0f} ms'}"

    n, e, times = stats["new"]
    rate = e / n if n else 0.0
    q = p95(times)
    print(f"{text('new')} | {text('old')}")
    if mode == "early":
        sys.exit(3 if n >= min_req and rate > max_err else 0)
    if n < min_req:
        sys.exit(2)
    if rate > max_err:
        sys.exit(3)
    if q is not None and q > max_p95:
        sys.exit(4)
    sys.exit(0)


if __name__ == "__main__":
    main()
