"""`make bench-compare BASELINE=<git revision>`: Parley's SFU as built now against a baseline build,
in one run, scenario by scenario, the two taking turns so that drift on the machine hits both.
The same load generator (this build's `parley load`) drives both. Timings never decide a test.

    BASELINE_BIN=path/to/parley  the baseline binary (the Makefile builds it in .build-baseline/)
    COMPARE_ROUNDS=3             runs of each scenario per build; the median is shown
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
import run  # noqa: E402

ROUNDS = int(os.environ.get("COMPARE_ROUNDS", "3"))


class Baseline(run.ParleySFU):
    name = "baseline"
    binary = os.environ["BASELINE_BIN"]


SCENARIOS = [
    ("fan-out N=20", ["--participants", "21", "--video-publishers", "1", "--audio-publishers", "1", "--video-bitrate", "1000000"]),
    ("fan-out N=80", ["--participants", "81", "--video-publishers", "1", "--audio-publishers", "1", "--video-bitrate", "1000000"]),
    ("50 in one meeting", ["--participants", "50", "--subscribe", "25", "--video-bitrate", "300000", "--frame-rate", "15"]),
    ("50 meetings of 4", ["--meetings", "50", "--participants", "4", "--video-bitrate", "300000", "--frame-rate", "15"]),
]


def main():
    rows = []
    for label, args in SCENARIOS:
        rates = {"baseline": [], "Parley": []}
        losses = {"baseline": [], "Parley": []}
        for round_number in range(ROUNDS):
            print(f"{label}: round {round_number + 1} of {ROUNDS}", flush=True)
            for sfu_class in (Baseline, run.ParleySFU):
                result = run.run_scenario(label, args, sfu_class)
                if result["packetsPerCPUSecond"]:
                    rates[sfu_class.name].append(result["packetsPerCPUSecond"])
                losses[sfu_class.name].append(result["lossPercent"] if result["lossPercent"] is not None else 100.0)
        before = statistics.median(rates["baseline"]) if rates["baseline"] else None
        after = statistics.median(rates["Parley"]) if rates["Parley"] else None
        rows.append((label, before, after, min(rates["baseline"], default=None), max(rates["baseline"], default=None),
                     min(rates["Parley"], default=None), max(rates["Parley"], default=None), max(losses["baseline"]), max(losses["Parley"])))
    print()
    print("| scenario | pkts per CPU-s before (median, range) | after (median, range) | after / before | worst loss % before / after |")
    print("| --- | --- | --- | --- | --- |")
    for label, before, after, bmin, bmax, amin, amax, bloss, aloss in rows:
        ratio = f"{after / before:.3f}" if before and after else "-"
        print(f"| {label} | {before} ({bmin}–{bmax}) | {after} ({amin}–{amax}) | {ratio} | {bloss:.2f} / {aloss:.2f} |")
    print(json.dumps({"rounds": ROUNDS, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
