"""`make soak`: the churn test's churn (Tests/Interop/churn.py) for SOAK_MINUTES (default 30)
against a release build of `parley serve` (PARLEY_BIN), in a network namespace with only loopback
(the Makefile makes it).

Every 10 s it samples the server's resident memory (/proc/PID/status VmRSS), open descriptors
(/proc/PID/fd), threads (/proc/PID/status Threads) and its /healthz transports, prints a table line
per sample, and writes the table to test-artifacts/soak.csv. At the end it compares the last
third's averages with the first third's: memory may grow by at most 10 % + 8 MiB (allocator
caches and histograms settle in the first minutes), descriptors by 5 and threads by 2 (each
signaling connection holds one descriptor and the churn's phase is the same in both thirds, since
they span whole minutes). The exit code is 1 if anything grew past that, a churn wave went wrong,
the steady meetings' loss rose or a minute of theirs received 10 % fewer packets a second than
before the churn (a silent stream shows no loss), or the server did not exit 0 on SIGTERM.
"""
import asyncio
import csv
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Interop"))
from churn import STEADY_MEETINGS, STEADY_PARTICIPANTS, Churn, ServerProcess, SteadyMeetings, settled  # noqa: E402
from conftest import ARTIFACTS, PARLEY  # noqa: E402

SAMPLE_SECONDS = 10
COLUMNS = ("elapsed_s", "rss_mib", "fds", "threads", "transports", "participants", "whip_whep_sessions", "connections")
# What "flat" allows between the first and the last third (see the docstring).
TOLERANCE = {"rss_mib": lambda first: first * 0.10 + 8, "fds": lambda first: 5, "threads": lambda first: 2}
LOSS_MARGIN = 0.5  # percentage points, as in test_churn.py
RATE_MARGIN = 0.10  # a minute may receive 10 % fewer packets a second than the quiet seconds before the churn


def sample(server, started):
    resources = server.resources()
    health = server.health()
    return {"elapsed_s": round(time.monotonic() - started), "rss_mib": round(resources["rss_kib"] / 1024, 1), "fds": resources["fds"],
            "threads": resources["threads"], "transports": health["sfu"]["transports"], "participants": health["participants"],
            "whip_whep_sessions": health["whipWhepSessions"], "connections": health["connections"]}


def print_row(row):
    print("  ".join(f"{row[c]:>{max(len(c), 8)}}" for c in COLUMNS), flush=True)


async def soak(server, minutes):
    rows, started = [], time.monotonic()
    steady = SteadyMeetings(server.url, minutes * 60 + 180, os.path.join(ARTIFACTS, "soak-steady.log"))
    churn = Churn(server.url, os.path.join(ARTIFACTS, "soak-waves.log"))
    await steady.start()
    if not await steady.wait_connected():
        churn.problem("the steady meetings did not connect")

    async def sampler():
        print("  ".join(f"{c:>{max(len(c), 8)}}" for c in COLUMNS), flush=True)
        while True:
            row = await asyncio.to_thread(sample, server, started)
            rows.append(row)
            print_row(row)
            await asyncio.sleep(SAMPLE_SECONDS - (time.monotonic() - started) % SAMPLE_SECONDS)

    sampling = asyncio.ensure_future(sampler())
    try:
        await asyncio.sleep(2)
        quiet_started = time.monotonic()
        await asyncio.sleep(8)
        quiet = steady.window(quiet_started, time.monotonic())
        churn_started = time.monotonic()
        quiet_rate = quiet["received"] / max(quiet["seconds"], 1e-9)
        for minute in range(minutes):
            minute_started = time.monotonic()
            await churn.minute(minute)
            # Loss alone misses a stream that goes silent (nothing newer arrives to show the gap):
            # the steady meetings must keep receiving at the quiet rate, minute by minute.
            this_minute = steady.window(minute_started, time.monotonic())
            rate = this_minute["received"] / max(this_minute["seconds"], 1e-9)
            if rate < (1 - RATE_MARGIN) * quiet_rate:
                churn.problem(f"minute {minute + 1}: the steady meetings received {rate:.0f} packets/s, "
                              f"{quiet_rate:.0f} before the churn")
            print(f"[soak] minute {minute + 1}/{minutes}: {sum(churn.peers.values())} peers so far, {len(churn.problems)} problems, "
                  f"steady loss so far {steady.window(churn_started, time.monotonic())['loss_percent']:.3f} %, "
                  f"received {rate:.0f} packets/s (quiet: {quiet_rate:.0f})", flush=True)
        during = steady.window(churn_started, time.monotonic())
        churn_window = (churn_started - started, time.monotonic() - started)
        health = await settled(server, STEADY_MEETINGS * STEADY_PARTICIPANTS)
        await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        sampling.cancel()
        churn.close()
    code, seconds = await asyncio.to_thread(server.terminate, 15)
    await steady.stop()
    return rows, churn_window, churn, quiet, during, health, code, seconds


def average(rows, column):
    return sum(r[column] for r in rows) / len(rows)


def main():
    minutes = max(1, round(float(os.environ.get("SOAK_MINUTES", "30"))))
    if not os.path.exists(PARLEY):
        sys.exit(f"no parley binary at {PARLEY} (PARLEY_BIN): swift build -c release --product parley")
    server = ServerProcess(PARLEY, "soak-server")
    print(f"[soak] {minutes} minutes of churn against {PARLEY} (pid {server.pid}, {server.url}); a sample every {SAMPLE_SECONDS} s", flush=True)
    try:
        rows, churn_window, churn, quiet, during, health, code, seconds = asyncio.run(soak(server, minutes))
    finally:
        server.kill()
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "soak.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    failures = []
    # The samples taken during the churn minutes, in thirds.
    churning = [r for r in rows if churn_window[0] <= r["elapsed_s"] < churn_window[1]]
    third = max(1, len(churning) // 3)
    first, last = churning[:third], churning[-third:]
    print(f"\n[soak] first third: {len(first)} samples, last third: {len(last)} samples")
    for column, allowed in TOLERANCE.items():
        a, b = average(first, column), average(last, column)
        flat = b - a <= allowed(a)
        print(f"[soak] {column}: first third {a:.1f}, last third {b:.1f} ({b - a:+.1f}; flat allows +{allowed(a):.1f}): "
              f"{'flat' if flat else 'GROWING'}")
        if not flat:
            failures.append(f"{column} grew from {a:.1f} to {b:.1f}")
    settled_rows = churning[third:]
    if len(settled_rows) >= 2:
        # Informational: the trend after the first third (allocator caches fill in the first
        # minutes); a leak of a few hundred bytes per peer shows here long before it passes the tolerance.
        xs, ys = [r["elapsed_s"] / 60 for r in settled_rows], [r["rss_mib"] for r in settled_rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sum((x - mx) ** 2 for x in xs) or 1)
        print(f"[soak] rss trend over the last two thirds: {slope:+.2f} MiB per minute")
    print(f"[soak] {sum(churn.peers.values())} churning peers: " + ", ".join(f"{k} {n}" for k, n in sorted(churn.peers.items())))
    print(f"[soak] steady meetings' loss: quiet {quiet['loss_percent']:.3f} %, during the churn {during['loss_percent']:.3f} %")
    print(f"[soak] after the churn: transports {health['sfu']['transports']}, WHIP/WHEP sessions {health['whipWhepSessions']}; "
          f"SIGTERM: exit {code} in {seconds:.1f} s; table in {path}")
    if during["loss_percent"] > quiet["loss_percent"] + LOSS_MARGIN:
        failures.append(f"the steady meetings' loss rose from {quiet['loss_percent']:.3f} % to {during['loss_percent']:.3f} %")
    if health["sfu"]["transports"] != STEADY_MEETINGS * STEADY_PARTICIPANTS or health["whipWhepSessions"] != 0:
        failures.append(f"transports left behind: {health['sfu']['transports']}, sessions {health['whipWhepSessions']}")
    if code != 0:
        failures.append(f"parley serve exited {code} after SIGTERM")
    failures += [f"churn: {p}" for p in churn.problems[:20]]
    findings = server.findings()
    failures += [f"log: {line}" for line in findings[:10]]
    if failures:
        print("[soak] FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("[soak] OK: memory, descriptors and threads stayed flat")


if __name__ == "__main__":
    main()
