"""`make bench`: Parley's SFU under `parley load`, against the machine's own ceiling.

Runs inside a network namespace with only loopback (the Makefile makes it), so every packet stays
on this machine. Writes bench/RESULTS.md. Timings here never decide a test.
"""
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PARLEY = os.path.join(ROOT, ".build", "release", "parley")
CEILING = os.path.join(ROOT, ".build", "release", "parley-ceiling")
QUICK = os.environ.get("BENCH_QUICK") == "1"
DURATION = "5" if QUICK else "10"

sys.path.insert(0, os.path.dirname(__file__))
from janus import MEDIA_HOST, Janus  # noqa: E402


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class ParleySFU:
    name = "Parley"
    # The binary that serves; `bench/compare.py` runs an older build beside it.
    binary = PARLEY

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            [self.binary, "serve", "--http-port", str(self.port), "--udp-port", str(41000), "--workers", "1",
             "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.load_args = ["--url", self.url]
        # iptables matches for the media between the load generator and this SFU, each way.
        self.media_matches = [["--dport", "41000"], ["--sport", "41000"]]
        for _ in range(100):
            try:
                self.forwarded()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("parley serve did not start")

    def forwarded(self):
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
            return json.loads(response.read())["sfu"]["counters"]["rtpForwarded"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


class JanusSFU:
    """Janus 1.1 VideoRoom, reached by `parley load --target janus` through its WebSocket API."""
    name = "Janus"

    def __init__(self):
        self.janus = Janus()
        self.process = self.janus.process
        self.load_args = ["--target", "janus", "--url", self.janus.url, "--bind-host", MEDIA_HOST, "--media-host", MEDIA_HOST]
        # Both ends of every media packet are MEDIA_HOST: one match covers each way.
        self.media_matches = [["-d", MEDIA_HOST]]

    def forwarded(self):
        return None  # Janus keeps no such counter; the load generator's received packets stand in

    def stop(self):
        self.janus.stop()


PROGRESS = re.compile(r"connected (\d+)/(\d+) sent (\d+) received (\d+)")


def drop_media(sfu, probability, add=True):
    """Drops `probability` of the UDP packets between the load generator and the SFU, each way."""
    for match in sfu.media_matches:
        subprocess.run(["iptables", "-A" if add else "-D", "INPUT", "-p", "udp", *match, "-m", "statistic", "--mode", "random",
                        "--probability", str(probability), "-j", "DROP"], check=True)


def run_scenario(label, args, sfu_class, loss=None):
    """One `parley load` run against a fresh SFU process. Its cost (CPU from /proc) is read over the
    steady state: from the first progress line where everyone is connected to the end of the run.
    `loss`: a share of the media packets dropped each way for the whole run."""
    sfu = sfu_class()
    steady = None
    if loss:
        drop_media(sfu, loss)
    try:
        pid = sfu.process.pid
        idle_rss = rss_bytes(pid)
        start = (cpu_seconds(pid), 0, sfu.forwarded())
        peak_rss = idle_rss
        # stdout to a file: the JSON of a large run outgrows a pipe's buffer while we read progress.
        with tempfile.TemporaryFile("w+") as stdout:
            load = subprocess.Popen([PARLEY, "load", *sfu.load_args, "--duration", DURATION, "--json", *args],
                                    stdout=stdout, stderr=subprocess.PIPE, text=True)
            tail = []
            for line in load.stderr:
                tail = (tail + [line])[-20:]
                peak_rss = max(peak_rss, rss_bytes(pid))
                match = PROGRESS.search(line)
                if match and steady is None and match.group(1) == match.group(2):
                    steady = (cpu_seconds(pid), int(match.group(4)), sfu.forwarded())
            load.wait()
            stdout.seek(0)
            out = stdout.read()
        end_cpu, end_forwarded = cpu_seconds(pid), sfu.forwarded()
    finally:
        if loss:
            drop_media(sfu, loss, add=False)
        sfu.stop()
    report = json.loads(out) if out.strip().startswith("{") else {"joined": 0, "lossPercent": 100.0, "error": "".join(tail)[-500:]}
    participants = report.get("meetings", 1) * report.get("participantsPerMeeting", 1)
    window_start = steady or start
    cpu = end_cpu - window_start[0]
    delivered = (report.get("packetsReceived") or 0) - window_start[1]
    forwarded = end_forwarded - window_start[2] if end_forwarded is not None else None
    result = {
        "sfu": sfu.name, "scenario": label, "args": " ".join(args), "joined": report.get("joined", 0), "participants": participants,
        "lossPercent": report.get("lossPercent"), "latencyP50Ms": report.get("latencyP50Milliseconds"),
        "latencyP99Ms": report.get("latencyP99Milliseconds"), "joinP50Seconds": report.get("joinP50Seconds"),
        "steadyWindow": steady is not None, "delivered": delivered, "forwarded": forwarded, "sfuCPUSeconds": round(cpu, 2),
        "cpuSecondsPer1000Packets": round(1000 * cpu / delivered, 4) if delivered > 0 else None,
        "packetsPerCPUSecond": round(delivered / cpu) if cpu > 0 and delivered > 0 else None,
        "memoryPerParticipantKB": round((peak_rss - idle_rss) / participants / 1024, 1),
        "packetsRepaired": report.get("packetsRepaired"), "repairedPercent": report.get("repairedPercent"),
    }
    if "error" in report:
        result["error"] = report["error"]
    errors = [p["error"] for p in report.get("participants", []) if p.get("error")]
    if errors:
        result["firstError"] = f"{errors[0]} ({len(errors)} participants)"
    print(f"  {sfu.name} {label}: {json.dumps(result)}", flush=True)
    return result


# One-way delay past which a conversation suffers (ITU-T G.114); a run whose median is above it is
# not a meeting, whatever its loss.
USABLE_LATENCY_MS = 150


def holds(r):
    return (r["joined"] == r["participants"] and r["lossPercent"] is not None and r["lossPercent"] <= 0.5
            and r["latencyP50Ms"] is not None and r["latencyP50Ms"] <= USABLE_LATENCY_MS)


def scenarios(sfu_class):
    results = []
    print(f"{sfu_class.name}", flush=True)
    print("1. fan-out: one publisher (audio + 1 Mb/s video) to N subscribers, N rising until loss passes 0.5 %", flush=True)
    for n in ([5, 20] if QUICK else [5, 10, 20, 40, 80, 160, 320, 640]):
        result = run_scenario(f"fan-out N={n}", ["--participants", str(n + 1), "--video-publishers", "1", "--audio-publishers", "1",
                                                 "--video-bitrate", "1000000"], sfu_class)
        results.append(result)
        if not holds(result):
            break
    print("2. one 50-person meeting: everyone sends audio + video (300 kb/s), receives 25 videos", flush=True)
    results.append(run_scenario("50 in one meeting", ["--participants", "50", "--subscribe", "25", "--video-bitrate", "300000",
                                                      "--frame-rate", "15"], sfu_class))
    print("3. 50 meetings of 4", flush=True)
    results.append(run_scenario("50 meetings of 4", ["--meetings", "50", "--participants", "4", "--video-bitrate", "300000",
                                                     "--frame-rate", "15"], sfu_class))
    print("4. under 5 % loss each way: one publisher (audio + 500 kb/s video) to 10 subscribers; NACKs and retransmissions", flush=True)
    results.append(run_scenario("10 under 5 % loss", ["--participants", "11", "--video-publishers", "1", "--audio-publishers", "1",
                                                      "--video-bitrate", "500000"], sfu_class, loss=0.05))
    print("5. the seed's target: 200 in one meeting, everyone sends audio (3 talk), 20 send video; each receives the speakers and 9 videos", flush=True)
    results.append(run_scenario("200 in one meeting", ["--participants", "200", "--video-publishers", "20", "--subscribe", "9",
                                                       "--loud-speakers", "3", "--video-bitrate", "300000", "--frame-rate", "15"], sfu_class))
    return results


def micro_benchmarks():
    """The ordo-one/benchmark tables `make bench` wrote, and the forwarding path's allocations per packet."""
    path = os.environ.get("MICRO_RESULTS", "")
    if not path or not os.path.exists(path):
        return None, {}
    with open(path) as f:
        text = f.read()
    start = text.find("## ParleyMicro")
    tables = text[start:].replace("## ParleyMicro", "").strip() if start >= 0 else text
    allocations, name = {}, None
    for line in tables.splitlines():
        if line.startswith("### "):
            name = line[4:].strip()
        elif line.startswith("| Malloc (total)") and name:
            cells = [c.strip() for c in line.strip("|").split("|")]
            allocations[name] = int(cells[7])  # p100: the most any sample allocated per packet
    return tables, allocations


def main():
    tables, allocations = micro_benchmarks()
    forwarding = {name: count for name, count in allocations.items() if name.startswith("forwarding path")}
    print(f"micro-benchmarks: allocations per operation (p100) {json.dumps(allocations)}", flush=True)
    print("ceiling: minimal recvmmsg → SRTP unprotect → protect → sendmmsg forwarder", flush=True)
    ceiling = json.loads(subprocess.run([CEILING, "3" if QUICK else "5"], capture_output=True, text=True, check=True).stdout)
    print(f"  {json.dumps(ceiling)}", flush=True)
    parley = scenarios(ParleySFU)
    janus = scenarios(JanusSFU)
    write_results(ceiling, parley, janus, tables, forwarding)
    if not forwarding or any(forwarding.values()):
        print(f"FAIL: the forwarding path must not allocate per packet; measured {forwarding or 'nothing'}", flush=True)
        return 1
    return 0


RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")


def write_section(lines):
    """Puts `lines` (a "## " heading first) into bench/RESULTS.md in place of the section with that
    heading, or at its end: the parts of `make bench` that run on their own each own a section."""
    heading = lines[0]
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Parley benchmark results\n"
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
    with open(RESULTS, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}"


def ratio(a, b):
    return f"{a / b:.3g}" if a and b else "-"


def seconds(value):
    return f"{value:.2f}" if value is not None else "-"


def largest_fan_out_held(results):
    held = [int(r["scenario"].split("=")[1]) for r in results if r["scenario"].startswith("fan-out") and holds(r)]
    return max(held) if held else None


def write_results(ceiling, parley, janus, micro_tables, forwarding_allocations):
    best_rate = max((r["packetsPerCPUSecond"] or 0) for r in parley)
    lines = [
        "# Parley benchmark results", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        "- reproduce: `make bench` (installs Janus; runs inside a loopback-only network namespace; `BENCH_QUICK=1 make bench` for a short run)",
        "- Parley runs as `parley serve --workers 1`; Janus 1.1.2 (Debian's package) with only its VideoRoom plugin and WebSocket",
        "  transport, driven by the same load generator (`parley load --target janus`). Each scenario gets a fresh SFU process.",
        "- the load generator runs beside the SFU on the same 2 cores, so at the largest sizes it competes with the SFU for CPU",
        "  and its own limits show as loss and latency.",
        "- SFU cost is the SFU process's CPU time (from /proc) over the steady state — from the moment every participant is",
        "  connected to the end of the run — divided by the packets the participants received in that window.",
        "",
        "## Ceiling",
        f"A minimal forwarder (recvmmsg → SRTP unprotect → SRTP protect → sendmmsg, AES-GCM, {ceiling['payloadBytes']}-byte payloads) "
        f"forwards **{ceiling['packetsPerCPUSecond']:,.0f} packets per CPU-second**.",
        f"Parley's best rate below, {best_rate:,} packets per CPU-second, is **{100 * best_rate / ceiling['packetsPerCPUSecond']:.0f} %** of it.",
        "The ceiling pays one unprotect and one protect per packet; an SFU decrypts a packet once and encrypts it once per "
        "subscriber, so with fan-out its work per delivered packet is smaller and the percentage can pass 100 %.",
        "",
        "## Parley against Janus",
        "Ratios are Parley ÷ Janus: above 1 means Parley delivers more packets per CPU-second; below 1 means Parley's latency or memory is lower.",
        "",
        "| scenario | pkts per CPU-s Parley / Janus | ratio | latency p50 ms Parley / Janus | ratio | loss % Parley / Janus | join p50 s Parley / Janus | memory / participant KB Parley / Janus |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    janus_by_scenario = {r["scenario"]: r for r in janus}
    for p in parley:
        j = janus_by_scenario.get(p["scenario"])
        if j is None:
            lines.append(f"| {p['scenario']} | {p['packetsPerCPUSecond']} / (not run: Janus stopped holding earlier) | - | "
                         f"{p['latencyP50Ms']} / - | - | {p['lossPercent']:.2f} / - | {seconds(p['joinP50Seconds'])} / - | {p['memoryPerParticipantKB']} / - |")
            continue
        lines.append(f"| {p['scenario']} | {p['packetsPerCPUSecond']} / {j['packetsPerCPUSecond']} | {ratio(p['packetsPerCPUSecond'], j['packetsPerCPUSecond'])} | "
                     f"{p['latencyP50Ms']} / {j['latencyP50Ms']} | {ratio(p['latencyP50Ms'], j['latencyP50Ms'])} | "
                     f"{p['lossPercent']:.2f} / {j['lossPercent']:.2f} | {seconds(p['joinP50Seconds'])} / {seconds(j['joinP50Seconds'])} | "
                     f"{p['memoryPerParticipantKB']} / {j['memoryPerParticipantKB']} |")
    for name, results in (("Parley", parley), ("Janus", janus)):
        lines += ["", f"## {name}, every run",
                  "| scenario | joined | loss % | latency p50 / p99 ms | delivered (steady) | SFU CPU s / 1000 pkts | pkts per CPU-s | % of ceiling | memory / participant KB |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in results:
            percent = f"{100 * r['packetsPerCPUSecond'] / ceiling['packetsPerCPUSecond']:.0f}" if r["packetsPerCPUSecond"] else "-"
            loss = f"{r['lossPercent']:.2f}" if r["lossPercent"] is not None else "-"
            lines.append(f"| {r['scenario']} | {r['joined']}/{r['participants']} | {loss} | {r['latencyP50Ms']} / {r['latencyP99Ms']} | "
                         f"{r['delivered']:,}{'' if r['steadyWindow'] else ' (whole run)'} | {r['cpuSecondsPer1000Packets']} | "
                         f"{r['packetsPerCPUSecond']} | {percent} | {r['memoryPerParticipantKB']} |")
    lines += ["", "## Reading"]
    for name, results in (("Parley", parley), ("Janus", janus)):
        largest = largest_fan_out_held(results)
        lines.append(f"- {name}: fan-out held (everyone joined, loss ≤ 0.5 %, latency p50 ≤ {USABLE_LATENCY_MS} ms) up to "
                     f"N = {largest if largest else 'none'} subscribers (of the sizes tried).")
        failed = [r for r in results if r["scenario"].startswith("fan-out") and not holds(r)]
        if failed and (failed[0].get("firstError") or failed[0].get("error")):
            lines.append(f"  At {failed[0]['scenario']}: {failed[0].get('firstError') or failed[0].get('error')}")
    for name, results in (("Parley", parley), ("Janus", janus)):
        target = results[-1]
        loss = f"{target['lossPercent']:.2f}" if target["lossPercent"] is not None else "-"
        lines.append(f"- {name}: the 200-participant meeting {'held' if holds(target) else 'did not hold'} "
                     f"({target['joined']}/{target['participants']} joined, {loss} % loss among them; one-way latency p50 "
                     f"{target['latencyP50Ms']} ms, p99 {target['latencyP99Ms']} ms).")
    for name, results in (("Parley", parley), ("Janus", janus)):
        lossy = next((r for r in results if "loss" in r["scenario"]), None)
        if lossy and lossy.get("repairedPercent") is not None:
            lines.append(f"- {name}, under 5 % loss each way: {lossy['repairedPercent']:.1f} % of the packets the network lost were "
                         f"recovered (NACK and retransmission, {lossy['packetsRepaired']} packets); {lossy['lossPercent']:.2f} % stayed lost "
                         f"(audio is not retransmitted: Opus FEC covers it in browsers); latency p50 {lossy['latencyP50Ms']} ms.")
    lines.append("- In the 200-participant meeting Parley sends each participant the 3 loudest speakers (speaker slots, chosen per "
                 "packet from the audio level) and the 9 videos it asks for; Janus's VideoRoom has no top-N audio: "
                 "its figures above are for what its subscribers take from the same load.")
    lines += ["", "## Micro-benchmarks (ordo-one/benchmark, `bench/micro`)",
              "Per operation (`*`: scaled per packet). The forwarding path is WorkerCore's receive path with real DTLS-SRTP peers in one "
              "process: SRTP unprotect, routing, header rewrite, SRTP protect per subscriber, into a discarding output.", ""]
    if forwarding_allocations:
        lines.append("Allocations per forwarded packet (worst sample): " +
                     ", ".join(f"{name}: **{count}**" for name, count in forwarding_allocations.items()) + ".")
    lines += ["", micro_tables or "(not run: MICRO_RESULTS not set)", ""]
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
