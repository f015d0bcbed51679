"""`make bench-large`: only `make bench`'s 200-person meeting (bench/run.py, scenario 5), Parley and
Janus one after the other, into its own section ("## 200 in one meeting") of bench/RESULTS.md. For
re-measuring the large meeting without the whole run; `make bench` measures it in its main tables too.
Timings here decide nothing. Runs inside the loopback-only namespace the Makefile makes.
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import run  # noqa: E402

SECTION = "## 200 in one meeting"
LABEL = "200 in one meeting"
# The same participants as run.py's scenario 5 (the target), measured over 30 s.
ARGS = ["--participants", "200", "--video-publishers", "20", "--subscribe", "9", "--loud-speakers", "3",
        "--video-bitrate", "300000", "--frame-rate", "15"]


def main():
    run.DURATION = os.environ.get("LARGE_DURATION", "30")
    results = [run.run_scenario(LABEL, ARGS, sfu) for sfu in (run.ParleySFU, run.JanusSFU)]
    lines = [SECTION, "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {run.machine()}",
             f"- reproduce: `make bench-large` (`bench/large.py`): `parley load {' '.join(ARGS)} --duration {run.DURATION}` against a",
             "  fresh `parley serve --workers 1` and a fresh Janus 1.1 VideoRoom, the load generator beside each on the same 2 cores.",
             "  Everyone publishes audio (3 loud at a time), 20 publish video; Parley sends each participant the 3 loudest and 9",
             "  videos; Janus (no top-N audio) forwards every subscribed stream: each subscribes to the 9 videos and all audio.",
             "  When this section is newer than the tables above, its rows supersede their \"200 in one meeting\" rows.", "",
             "| SFU | joined | loss % | latency p50 / p99 ms | join p50 s | delivered (steady) | pkts per CPU-s | memory / participant KB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        loss = f"{r['lossPercent']:.2f}" if r["lossPercent"] is not None else "-"
        lines.append(f"| {r['sfu']} | {r['joined']}/{r['participants']} | {loss} | {r['latencyP50Ms']} / {r['latencyP99Ms']} | "
                     f"{run.seconds(r['joinP50Seconds'])} | {r['delivered']:,} | {r['packetsPerCPUSecond']} | {r['memoryPerParticipantKB']} |")
    run.write_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
