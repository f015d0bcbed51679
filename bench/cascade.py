"""`make bench` (second part): meetings larger than one SFU worker or one SFU (issue 13).

1. A meeting over 5 `parley sfu` processes (capacity 200 each) behind a Redis and one
   `parley signal`: joined, loss and latency per SFU (the load generator's `perServer`), the
   streams that cross each pipe, and the latency a hop adds (participants on the publishers' SFU
   against those one pipe away, in the same run).
2. The cost of a piped stream: one publisher on SFU a, 50 subscribers on SFU b; SFU a's CPU per
   1,000 packets it sends into the pipe, against SFU b's per 1,000 it delivers.
3. One meeting on `parley serve` with one worker, then two (`--worker-capacity` half the
   meeting): packets delivered per second and per worker-CPU-second, each worker's CPU.

Runs inside the loopback-only namespace `make bench` makes. Writes the "Cascading" section of
bench/RESULTS.md (the rest of the file is run.py's). Timings here decide nothing.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from run import PARLEY, PROGRESS, QUICK, cpu_seconds, free_port, machine, write_section  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOKEN = "bench-cascade-token-0123456789"
SECTION = "## Cascading"


def get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait(condition, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class Cluster:
    """Redis, `parley sfu` × len(capacities) (one worker each), one `parley signal`."""

    def __init__(self, capacities, signal_args=(), start=None):
        self.token = tempfile.NamedTemporaryFile("w", delete=False)
        self.token.write(TOKEN)
        self.token.close()
        self.redis_port = free_port()
        self.processes = [subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        time.sleep(0.5)
        self.capacities = capacities
        self.sfus = []
        for index, capacity in enumerate(capacities[:start] if start else capacities):
            self.add_sfu(index, capacity)
        self.http_port = free_port()
        self.processes.append(subprocess.Popen(
            [PARLEY, "signal", "--redis", f"redis://127.0.0.1:{self.redis_port}", "--http-port", str(self.http_port),
             "--control-token-file", self.token.name, "--admin-token-file", self.token.name, "--log-level", "error", *signal_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.url = f"http://127.0.0.1:{self.http_port}"
        if not wait(lambda: get(self.url + "/healthz")["sfu"]["workers"] >= len(self.sfus)):
            raise RuntimeError("the signaling node never saw the SFUs")

    def add_sfu(self, index, capacity):
        control = free_port()
        process = subprocess.Popen(
            [PARLEY, "sfu", "--redis", f"redis://127.0.0.1:{self.redis_port}", "--node-id", f"sfu-{index}", "--udp-port", str(43000 + 10 * index),
             "--announce-ip", "127.0.0.1", "--workers", "1", "--capacity", str(capacity), "--control-port", str(control),
             "--control-token-file", self.token.name, "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        self.sfus.append({"id": f"sfu-{index}", "process": process, "control": f"http://127.0.0.1:{control}", "port": 43000 + 10 * index})
        if not wait(lambda: get(self.sfus[-1]["control"] + "/control/status", TOKEN) is not None):
            raise RuntimeError(f"sfu-{index} did not start")

    def status(self, sfu):
        return get(sfu["control"] + "/control/status", TOKEN)

    def cpu(self):
        return {sfu["id"]: cpu_seconds(sfu["process"].pid) for sfu in self.sfus}

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        os.unlink(self.token.name)


def load(url, args, on_steady=None, duration="30"):
    """`parley load --json` with its progress read; `on_steady` runs once 99 % of the participants are connected."""
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen([PARLEY, "load", "--url", url, "--duration", duration, "--json", *args], stdout=stdout,
                                   stderr=subprocess.PIPE, text=True)
        steady = None
        for line in process.stderr:
            match = PROGRESS.search(line)
            if match and steady is None and int(match.group(1)) >= 0.99 * int(match.group(2)):
                steady = on_steady() if on_steady else True
        process.wait()
        stdout.seek(0)
        out = stdout.read()
    return (json.loads(out) if out.strip().startswith("{") else {"joined": 0, "error": out[-300:]}), steady


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def big_meeting():
    # Capacity with a tenth to spare: a newcomer on a full SFU goes to another, and every SFU full refuses.
    participants, sfus, capacity = (400, 4, 110) if QUICK else (1000, 5, 220)
    args = ["--participants", str(participants), "--audio-publishers", "2", "--loud-speakers", "1", "--video-publishers", "5",
            "--video-bitrate", "150000", "--frame-rate", "10", "--subscribe", "1", "--join-rate", "25"]
    print(f"1. {participants} in one meeting over {sfus} SFUs (capacity {capacity}): {' '.join(args)}; signal --audio-speakers 1", flush=True)
    cluster = Cluster([capacity] * sfus, signal_args=["--audio-speakers", "1"])
    try:
        marks = {}

        def steady():
            marks["cpu"] = cluster.cpu()
            marks["status"] = [cluster.status(s) for s in cluster.sfus]
            view = get(cluster.url + "/api/admin/meetings/load-0", TOKEN)
            marks["view"] = view
            return True
        # The ramp (25 a second: at 50, the signaling node and Redis fell behind on these 2 cores
        # and some joins timed out), then a steady state of about 20 s.
        report, _ = load(cluster.url, args, steady, duration="36" if QUICK else "60")
        end_cpu = cluster.cpu()
        end_status = [cluster.status(s) for s in cluster.sfus]
    finally:
        cluster.stop()
    cpu = sum(end_cpu[k] - marks.get("cpu", end_cpu)[k] for k in end_cpu)
    piped_sent = sum(e["counters"]["pipedPacketsSent"] - b["counters"]["pipedPacketsSent"] for e, b in zip(end_status, marks.get("status", end_status)))
    servers = report.get("perServer", [])
    publishers_port = max(range(len(end_status)), key=lambda i: end_status[i]["counters"]["pipedPacketsSent"])
    near = next((s for s in servers if s["address"].endswith(f":{43000 + 10 * publishers_port}")), None)
    far = [s for s in servers if s is not near and s.get("latencyP50Milliseconds") is not None]
    crossing = []
    for router in marks.get("view", {}).get("media", {}).get("routers", []):
        for pipe in router.get("pipes", []):
            out = [x for x in pipe["streams"] if x["direction"] == "out"]
            crossing.append((router["node"], pipe["remote"], sum(1 for x in out if x["wanted"] and x["packets"] > 0), len(out)))
    result = {"participants": participants, "sfus": sfus, "joined": report.get("joined"), "loss": report.get("lossPercent"),
              "p50": report.get("latencyP50Milliseconds"), "p99": report.get("latencyP99Milliseconds"), "joinP50": report.get("joinP50Seconds"),
              "servers": servers, "near": near, "far": far, "sfuCPU": cpu, "pipedPackets": piped_sent, "crossing": crossing,
              "args": " ".join(args)}
    print(f"  {json.dumps({k: v for k, v in result.items() if k not in ('servers', 'far')})}", flush=True)
    return result


def pipe_cost():
    publishers, subscribers = 10, 50
    print(f"2. the cost of piped streams: {publishers} video publishers (1 Mb/s) on SFU a, {subscribers} subscribers of all of them on SFU b", flush=True)
    cluster = Cluster([publishers, subscribers + 5], start=1)
    publisher = None
    try:
        # The publishers alone, on the only SFU there is (they receive nothing); then SFU b,
        # where everyone else goes.
        publisher = subprocess.Popen([PARLEY, "load", "--url", cluster.url, "--participants", str(publishers), "--duration", "60", "--json",
                                      "--meeting-prefix", "pipe", "--audio-publishers", "0", "--subscribe", "0", "--video-bitrate", "1000000"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: cluster.status(cluster.sfus[0])["transports"] == publishers)
        cluster.add_sfu(1, subscribers + 5)
        wait(lambda: get(cluster.url + "/healthz")["sfu"]["workers"] >= 2)
        time.sleep(2)
        # SFU a's cost with nobody watching (packets in, none out): what the pipe adds comes on top.
        idle_start, idle_cpu = time.monotonic(), cluster.cpu()["sfu-0"]
        time.sleep(5)
        idle_rate = (cluster.cpu()["sfu-0"] - idle_cpu) / (time.monotonic() - idle_start)
        marks = {}

        def steady():
            marks["cpu"], marks["at"] = cluster.cpu(), time.monotonic()
            marks["status"] = [cluster.status(s) for s in cluster.sfus]
            return True
        report, _ = load(cluster.url, ["--participants", str(subscribers), "--audio-publishers", "0", "--video-publishers", str(publishers),
                                       "--receive-only", "--meeting-prefix", "pipe", "--join-rate", "50"], steady, duration="20")
        end_cpu, end_status, end_at = cluster.cpu(), [cluster.status(s) for s in cluster.sfus], time.monotonic()
    finally:
        if publisher:
            publisher.terminate()
            publisher.wait()
        cluster.stop()
    begin_cpu, begin_status = marks.get("cpu", end_cpu), marks.get("status", end_status)
    window = end_at - marks.get("at", end_at)
    a_cpu, b_cpu = end_cpu["sfu-0"] - begin_cpu["sfu-0"], end_cpu["sfu-1"] - begin_cpu["sfu-1"]
    piped = end_status[0]["counters"]["pipedPacketsSent"] - begin_status[0]["counters"]["pipedPacketsSent"]
    delivered = end_status[1]["counters"]["rtpForwarded"] - begin_status[1]["counters"]["rtpForwarded"]
    marginal = a_cpu - idle_rate * window
    result = {"publishers": publishers, "subscribers": subscribers, "joined": report.get("joined"), "loss": report.get("lossPercent"),
              "p50": report.get("latencyP50Milliseconds"), "p99": report.get("latencyP99Milliseconds"), "window": window,
              "pipedPackets": piped, "aCPU": a_cpu, "aIdleRate": idle_rate, "aPer1000": 1000 * marginal / piped if piped else None,
              "delivered": delivered, "bCPU": b_cpu, "bPer1000": 1000 * b_cpu / delivered if delivered else None}
    print(f"  {json.dumps(result)}", flush=True)
    return result


def worker_cpu(pid):
    """CPU seconds of each parley-worker-N thread of a process."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            if name.startswith("parley-worker"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                threads[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return threads


def two_workers():
    participants = 60 if QUICK else 100
    args = ["--participants", str(participants), "--video-publishers", "10", "--subscribe", "5", "--loud-speakers", "3",
            "--video-bitrate", "300000", "--frame-rate", "15"]
    print(f"3. one meeting of {participants} on one worker, then on two: {' '.join(args)}", flush=True)
    results = []
    for workers, extra in ((1, []), (2, ["--worker-capacity", str(participants // 2)])):
        port = free_port()
        server = subprocess.Popen([PARLEY, "serve", "--http-port", str(port), "--udp-port", "44000", "--workers", str(workers), "--log-level", "error",
                                   *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait(lambda: get(url + "/healthz") is not None)
            marks = {}

            def steady():
                marks["threads"] = worker_cpu(server.pid)
                marks["cpu"] = cpu_seconds(server.pid)
                marks["forwarded"] = get(url + "/healthz")["sfu"]["counters"]
                marks["at"] = time.monotonic()
                return True
            report, _ = load(url, args, steady, duration="10" if QUICK else "20")
            threads, cpu, counters, at = worker_cpu(server.pid), cpu_seconds(server.pid), get(url + "/healthz")["sfu"]["counters"], time.monotonic()
        finally:
            server.terminate()
            server.wait()
        begin = marks.get("forwarded", counters)
        forwarded = counters["rtpForwarded"] - begin["rtpForwarded"]
        piped = counters["pipedPacketsSent"] - begin["pipedPacketsSent"]
        per_thread = {name: threads[name] - marks.get("threads", threads).get(name, 0) for name in threads}
        seconds = at - marks.get("at", at)
        result = {"workers": workers, "joined": report.get("joined"), "participants": participants, "loss": report.get("lossPercent"),
                  "p50": report.get("latencyP50Milliseconds"), "p99": report.get("latencyP99Milliseconds"),
                  "forwardedPerSecond": forwarded / seconds if seconds else None, "piped": piped,
                  "workerCPU": per_thread, "sfuCPU": cpu - marks.get("cpu", cpu),
                  "perWorkerCPUSecond": forwarded / sum(per_thread.values()) if sum(per_thread.values()) else None}
        print(f"  {json.dumps(result)}", flush=True)
        results.append(result)
    return results


def write(big, cost, workers):
    lines = [SECTION, "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {machine()}",
             "- reproduce: `make bench` (this section: `bench/cascade.py`, run by it); every process on the same 2 cores,",
             "  the load generator too; loopback only.", "",
             f"### {big['participants']} in one meeting over {big['sfus']} `parley sfu` (one worker each)", "",
             f"`parley load {big['args']}` against `parley signal --audio-speakers 1`: the rates that fit 2 cores beside the load",
             "generator (each participant receives one speaker and one video; everyone's signaling, join and DTLS are real).", "",
             f"- joined {big['joined']}/{big['participants']}, loss {fmt(big['loss'], 2)} %, one-way latency p50 {fmt(big['p50'])} ms,"
             f" p99 {fmt(big['p99'])} ms, join p50 {fmt(big['joinP50'], 2)} s",
             f"- SFU CPU over the steady state (all {big['sfus']} processes): {fmt(big['sfuCPU'], 1)} s; packets into pipes: {big['pipedPackets']}", "",
             "| SFU worker | participants | loss % | latency p50 / p99 ms |", "| --- | --- | --- | --- |"]
    for server in big["servers"]:
        mark = " (the publishers')" if server is big["near"] or server == big["near"] else ""
        lines.append(f"| {server['address']}{mark} | {server['participants']} | {fmt(server['lossPercent'], 2)} | "
                     f"{fmt(server['latencyP50Milliseconds'])} / {fmt(server['latencyP99Milliseconds'])} |")
    if big["near"] and big["far"]:
        far50 = sum(s["latencyP50Milliseconds"] for s in big["far"]) / len(big["far"])
        far99 = sum(s["latencyP99Milliseconds"] for s in big["far"]) / len(big["far"])
        lines += ["", f"- added latency per hop (participants one pipe away against those on the publishers' SFU, same run): "
                      f"p50 {fmt(far50 - big['near']['latencyP50Milliseconds'])} ms, p99 {fmt(far99 - big['near']['latencyP99Milliseconds'])} ms"]
    if big["crossing"]:
        lines += ["", "Streams crossing each pipe at the steady state (wanted and sent / the producers the pipe could carry):", ""]
        lines += [f"- {node} → {remote}: {wanted} / {total}" for node, remote, wanted, total in big["crossing"] if total > 0]
        lines += ["- (pipes from the other SFUs carry nothing: nobody publishes there)"]
    lines += ["", "### The cost of piped streams", "",
              f"{cost['publishers']} video publishers (1 Mb/s each, receiving nothing) on SFU a; {cost['subscribers']} subscribers of all of them on "
              f"SFU b: joined {cost['joined']}, loss {fmt(cost['loss'], 2)} %, latency p50 {fmt(cost['p50'])} ms p99 {fmt(cost['p99'])} ms.", "",
              f"- SFU a: {cost['pipedPackets']} packets into the pipe in {fmt(cost['window'], 1)} s, {fmt(cost['aCPU'], 2)} CPU s, of which "
              f"{fmt(cost['aIdleRate'] * cost['window'], 2)} s it spends with nobody watching (receiving, decrypting, timers):",
              f"  **{fmt(cost['aPer1000'], 4)} CPU s per 1,000 piped packets** on top",
              f"- SFU b: {cost['delivered']} packets delivered, {fmt(cost['bCPU'], 2)} CPU s: {fmt(cost['bPer1000'], 4)} CPU s per 1,000 delivered "
              "(receiving from the pipe included)", "",
              "### One meeting on one worker and on two", "",
              "| workers | joined | loss % | latency p50 / p99 ms | forwarded per s | piped | worker CPU s | forwarded per worker-CPU-s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in workers:
        cpu = ", ".join(f"{fmt(v, 1)}" for _, v in sorted(r["workerCPU"].items()))
        lines.append(f"| {r['workers']} | {r['joined']}/{r['participants']} | {fmt(r['loss'], 2)} | {fmt(r['p50'])} / {fmt(r['p99'])} | "
                     f"{fmt(r['forwardedPerSecond'], 0)} | {r['piped']} | {cpu} | {fmt(r['perWorkerCPUSecond'], 0)} |")
    if len(workers) == 2 and workers[0]["forwardedPerSecond"] and workers[1]["forwardedPerSecond"]:
        lines += ["", f"- two workers ÷ one, packets forwarded per second: {workers[1]['forwardedPerSecond'] / workers[0]['forwardedPerSecond']:.2f}×"
                      " (the same load: the ratio shows the cost the split adds, not a higher ceiling, because the load generator shares the cores)"]
    write_section(lines)


def main():
    big = big_meeting()
    cost = pipe_cost()
    workers = two_workers()
    write(big, cost, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
