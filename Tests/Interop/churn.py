"""The churn of issue 11: peers join and leave one `parley serve` in every way a peer can leave,
while media flows in other meetings. `test_churn.py` runs one minute of it against the
AddressSanitizer build; `scripts/soak.py` runs it for half an hour against a release build and
watches the server's memory, descriptors and threads.

Every way of leaving, each minute (about 270 peers):
- `parley load` waves (`--leave`): all at once, one by one, mid-handshake (quiet after the DTLS
  ClientHello), DTLS close_notify, silent until ICE consent expires (30 s), a signaling socket
  closed without `leave`, and over WHIP/WHEP the same with DELETE;
- `parley load` processes killed with SIGKILL: the kernel drops their sockets, media stops dead;
- a host (this module, over signaling) removing participants of a meeting made through the API;
- aiortc WHIP publishers and WHEP players leaving by DELETE and by `pc.close()`.
Each wave's report is checked (the server dropped every hung-up and silent peer on its own, every
removal reached its peer, …); what is wrong goes into `Churn.problems`.
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import PARLEY, ROOT, Server  # noqa: E402
from test_whip_whep_aiortc import first_frame_of_size, http, play, publish  # noqa: E402  (also points aioice at 127.0.0.1)

# What a sanitizer or the Swift runtime writes when something went wrong.
FINDINGS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "Fatal error")
# PARLEY_LSAN_SUPPRESSIONS names another file (to try a suppression before it goes into the repository's).
LSAN_SUPPRESSIONS = os.environ.get("PARLEY_LSAN_SUPPRESSIONS", os.path.join(ROOT, "scripts", "sanitizers", "lsan.supp"))
SANITIZER_ENV = {"ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1", "LSAN_OPTIONS": f"suppressions={LSAN_SUPPRESSIONS}"}

# The churn meetings' media is light (the steady meetings are what is measured); the steady
# meetings send what a small real meeting does.
CHURN_MEDIA = ("--video-bitrate", "150000", "--frame-rate", "15", "--video-publishers", "3")
STEADY_MEETINGS, STEADY_PARTICIPANTS = 2, 4
STEADY_MEDIA = ("--video-bitrate", "300000", "--frame-rate", "25")
# Participant k of a mixed wave leaves the k-th way (cycling).
MIXED = "all-at-once,one-by-one,mid-handshake,dtls-close,drop-socket,one-by-one"
WHIP_MIXED = "all-at-once,one-by-one,mid-handshake,dtls-close"
AIORTC_SIZE = (160, 120)


class ServerProcess(Server):
    """`parley serve` (any build) as the churn drives it: its resources, and how it ends."""

    def __init__(self, binary, name, env=None, workers=2, log_level="info"):
        # A sanitizer build takes longer to answer its first /healthz.
        super().__init__(name, workers=workers, binary=binary, env=env, log_level=log_level, start_timeout=30)

    def health_status(self):
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
            return response.status

    def resources(self):
        """The process's resident memory (KiB), open descriptors and threads."""
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()
        return {"rss_kib": int(fields["VmRSS"][0]), "fds": len(os.listdir(f"/proc/{self.pid}/fd")), "threads": int(fields["Threads"][0])}

    def terminate(self, timeout=10):
        """SIGTERM; returns (exit code, seconds it took), or (None, timeout) if it did not exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self.log.close()
        return code, time.monotonic() - started

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self.log.closed:
            self.log.close()

    def findings(self):
        """The lines of its log that name a sanitizer finding or a runtime crash."""
        with open(self.log_path, errors="replace") as f:
            return [line.rstrip() for line in f if any(marker in line for marker in FINDINGS)]


def load_command(url, prefix, meetings, participants, duration, leave="all-at-once", whip=False, media=CHURN_MEDIA, extra=()):
    return [PARLEY, "load", "--url", url, "--meeting-prefix", prefix, "--meetings", str(meetings), "--participants", str(participants),
            "--duration", str(duration), "--leave", leave, "--json", *(["--whip"] if whip else []), *media, *extra]


class SteadyMeetings:
    """Meetings that stay the whole time (`parley load --progress-json`): their once-a-second
    progress, timed as it arrives, gives loss and frames received over any window."""

    def __init__(self, url, duration, log_path):
        self.url, self.duration, self.log_path = url, duration, log_path
        self.snapshots = []  # (monotonic time, progress)
        self.participants = STEADY_MEETINGS * STEADY_PARTICIPANTS

    async def start(self):
        self.log = open(self.log_path, "w")
        self.process = await asyncio.create_subprocess_exec(
            *load_command(self.url, "steady", STEADY_MEETINGS, STEADY_PARTICIPANTS, self.duration, media=STEADY_MEDIA, extra=("--progress-json",)),
            stdout=self.log, stderr=asyncio.subprocess.PIPE)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        while line := await self.process.stderr.readline():
            try:
                self.snapshots.append((time.monotonic(), json.loads(line)))
            except ValueError:
                self.log.write(line.decode(errors="replace"))

    async def wait_connected(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.snapshots and self.snapshots[-1][1]["connected"] == self.participants:
                return True
            await asyncio.sleep(0.2)
        return False

    def _first_after(self, moment):
        """The first snapshot taken at or after `moment` (the last one if none is)."""
        return next((snapshot for taken, snapshot in self.snapshots if taken >= moment), self.snapshots[-1][1])

    def _last_before(self, moment):
        """The last snapshot taken at or before `moment` (the first one if none is)."""
        return next((snapshot for taken, snapshot in reversed(self.snapshots) if taken <= moment), self.snapshots[0][1])

    def window(self, start, end):
        """Loss (what never came, of what was sent to them) and, per participant, packets and
        frames that arrived between two moments: differences, not the cumulative counters."""
        first, last = self._first_after(start), self._last_before(end)
        received = last["packetsReceived"] - first["packetsReceived"]
        lost = last["packetsLost"] - first["packetsLost"]
        seconds = last["elapsedSeconds"] - first["elapsedSeconds"]
        per = {name: {"packets": p["packetsReceived"] - first["participants"].get(name, {}).get("packetsReceived", 0),
                      "frames": p["framesReceived"] - first["participants"].get(name, {}).get("framesReceived", 0)}
               for name, p in last["participants"].items()}
        return {"seconds": seconds, "received": received, "lost": lost,
                "loss_percent": 100 * lost / (received + lost) if received + lost else 0.0, "participants": per}

    def worst_second(self, start, end):
        """The highest loss (percent) between two successive progress lines within the window."""
        inside = [snapshot for taken, snapshot in self.snapshots if start <= taken <= end]
        worst = 0.0
        for a, b in zip(inside, inside[1:]):
            received, lost = b["packetsReceived"] - a["packetsReceived"], b["packetsLost"] - a["packetsLost"]
            if received + lost:
                worst = max(worst, 100 * lost / (received + lost))
        return worst

    async def stop(self):
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.reader.cancel()
        self.log.close()


async def at(offset, start, coroutine):
    """Runs `coroutine` `offset` seconds after the monotonic moment `start`."""
    await asyncio.sleep(max(0, start + offset - time.monotonic()))
    return await coroutine


class Churn:
    """Minutes of churn against one server; `peers` counts who came and how each left."""

    def __init__(self, url, log_path):
        self.url = url
        self.log = open(log_path, "a")
        self.peers = Counter()
        self.problems = []

    def problem(self, text):
        self.problems.append(text)
        self.log.write(f"PROBLEM {text}\n")
        self.log.flush()

    async def minute(self, cycle):
        """One minute: every way of leaving, the last wave done by about 55 s."""
        p, start = f"c{cycle}", time.monotonic()
        jobs = [
            # Silent first: the server drops them only when consent expires 30 s after they stop.
            at(0, start, self.wave(f"{p}-silent", 2, 5, 6, "silent,all-at-once,silent,dtls-close,silent")),
            at(1, start, self.wave(f"{p}-whipsilent", 1, 4, 5, "silent,silent,all-at-once,silent", whip=True)),
            at(3, start, self.aiortc_delete_then_close(f"{p}-rtca")),
            at(15, start, self.crash(f"{p}-crasha")),
            at(20, start, self.removal(f"{p}-rm")),
            at(26, start, self.aiortc_close_then_delete(f"{p}-rtcb")),
            at(35, start, self.crash(f"{p}-crashb")),
        ]
        jobs += [at(2 + 5 * i, start, self.wave(f"{p}-mix{i}", 3, 6, 4, MIXED)) for i in range(10)]
        jobs += [at(4 + 10 * i, start, self.wave(f"{p}-whip{i}", 2, 4, 4, WHIP_MIXED, whip=True)) for i in range(5)]
        for outcome in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(outcome, BaseException):
                self.problem(f"minute {cycle}: {outcome!r}")
        await asyncio.sleep(max(0, start + 60 - time.monotonic()))

    async def run_load(self, name, command, timeout):
        self.log.write(f"--- {name}: {' '.join(command[1:])}\n")
        self.log.flush()
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=self.log)
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            self.problem(f"{name}: parley load still running after {timeout} s")
            return None
        if process.returncode != 0:
            self.problem(f"{name}: parley load exited {process.returncode}")
        try:
            return json.loads(out)
        except ValueError:
            self.problem(f"{name}: no JSON report: {out[:200]!r}")
            return None

    async def wave(self, name, meetings, participants, duration, leave, whip=False):
        """A `parley load` run whose participants leave the ways `leave` lists; checks its report."""
        report = await self.run_load(name, load_command(self.url, name, meetings, participants, duration, leave, whip), duration + 60)
        if report is None:
            return
        for p in report["participants"]:
            kind = f"load{'-whip' if whip else ''} {p['leave']}"
            self.peers[kind] += 1
            if p.get("error"):
                self.problem(f"{name} {p['name']} ({p['leave']}): {p['error']}")
            elif p["leave"] == "mid-handshake":
                # It left as soon as its ClientHello was out, long before the end of the run.
                if p.get("leftAfterSeconds") is None or p["leftAfterSeconds"] > duration - 0.5:
                    self.problem(f"{name} {p['name']}: never got to its DTLS handshake")
            elif p["leave"] != "one-by-one" and not p["joined"]:
                self.problem(f"{name} {p['name']} ({p['leave']}) never connected")
            elif p["leave"] in ("dtls-close", "silent") and p.get("mediaEndedByServer") is not True:
                self.problem(f"{name} {p['name']}: after its {p['leave']} the server did not drop its media on its own")

    async def crash(self, name, meetings=2, participants=5, after=3):
        """A `parley load` process killed with SIGKILL mid-call: the kernel closes its signaling
        sockets (no `leave`, no close frame) and its media stops dead."""
        self.log.write(f"--- {name}: killed after {after} s\n")
        process = await asyncio.create_subprocess_exec(*load_command(self.url, name, meetings, participants, 60),
                                                       stdout=asyncio.subprocess.DEVNULL, stderr=self.log)
        await asyncio.sleep(after)
        process.kill()
        await process.wait()
        self.peers["load killed (SIGKILL)"] += meetings * participants

    async def removal(self, name, participants=6, removed=3):
        """A meeting made through the API; its host removes some participants mid-call."""
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url + "/api/meetings", json={"id": f"{name}-0"}) as response:
                created = await response.json()
                if response.status != 201:
                    self.problem(f"{name}: POST /api/meetings answered {response.status}: {created}")
                    return
            async with session.ws_connect(self.url.replace("http", "ws") + "/ws") as host:
                await host.send_str(json.dumps({"type": "join", "meeting": f"{name}-0", "name": "Host", "token": created["hostToken"]}))
                load = asyncio.ensure_future(self.run_load(name, load_command(self.url, name, 1, participants, 12), 60))
                joined, left = {}, set()

                async def read(until, timeout):
                    deadline = time.monotonic() + timeout
                    while not until() and time.monotonic() < deadline:
                        try:
                            message = await host.receive(timeout=max(0.01, deadline - time.monotonic()))
                        except asyncio.TimeoutError:
                            break
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        body = json.loads(message.data)
                        if body["type"] == "participant-joined":
                            joined[body["participant"]["name"]] = body["participant"]["id"]
                        elif body["type"] == "participant-left":
                            left.add(body["participantId"])
                        elif body["type"] == "error":
                            self.problem(f"{name}: host got {body}")

                await read(lambda: len(joined) == participants, 20)
                await read(lambda: False, 2)  # media flows for a while
                targets = [joined[n] for n in sorted(joined)[:removed]]
                for target in targets:
                    await host.send_str(json.dumps({"type": "host", "action": "remove", "participantId": target}))
                    await asyncio.sleep(0.3)
                await read(lambda: left.issuperset(targets), 10)
                if not left.issuperset(targets):
                    self.problem(f"{name}: {len(set(targets) - left)} removed participants never left")
                report = await load
                await host.send_str('{"type":"leave"}')
        self.peers["removed by the host"] += removed
        if report is None:
            return
        self.peers["load all-at-once"] += participants - removed
        if report["removed"] != removed:
            self.problem(f"{name}: {report['removed']} participants were told of their removal, not {removed}")

    async def aiortc_group(self, name, players):
        """An aiortc WHIP publisher and WHEP players in one meeting, once every player decodes
        frames of the published size."""
        publisher, location = await publish(self.url, name, *AIORTC_SIZE)
        group = [(publisher, location)]
        for _ in range(players):
            pc, player_location, frames, _ = await play(self.url, name)
            group.append((pc, player_location))
            if not await first_frame_of_size(frames, *AIORTC_SIZE, 15):
                self.problem(f"{name}: a WHEP player decoded no frame of the published size")
        return group

    async def delete(self, location):
        status, _, _ = await asyncio.to_thread(http, "DELETE", self.url + location)
        return status

    async def aiortc_delete_then_close(self, name):
        """Players leave by DELETE (then close), one by pc.close() alone; the publisher by DELETE."""
        try:
            group = await self.aiortc_group(name, 3)
            await asyncio.sleep(2)
            (publisher, publisher_location), players = group[0], group[1:]
            for pc, location in players[:2]:
                if await self.delete(location) != 200:
                    self.problem(f"{name}: DELETE of a WHEP session failed")
                await pc.close()
            await players[2][0].close()
            if await self.delete(publisher_location) != 200:
                self.problem(f"{name}: DELETE of the WHIP session failed")
            await publisher.close()
            self.peers["aiortc DELETE"] += 3
            self.peers["aiortc pc.close()"] += 1
        except Exception as error:  # noqa: BLE001 - any failure of the peers is a finding
            self.problem(f"{name}: {error!r}")

    async def aiortc_close_then_delete(self, name):
        """The publisher hangs up with pc.close() (DTLS close, no DELETE) while its players
        watch; then they all close at once."""
        try:
            group = await self.aiortc_group(name, 2)
            await asyncio.sleep(2)
            await group[0][0].close()
            await asyncio.sleep(1)
            await asyncio.gather(*(pc.close() for pc, _ in group[1:]))
            self.peers["aiortc pc.close()"] += 3
        except Exception as error:  # noqa: BLE001
            self.problem(f"{name}: {error!r}")

    def close(self):
        self.log.close()


async def settled(server, steady_transports, timeout=25):
    """Waits until the server holds the steady meetings' transports only (and no WHIP/WHEP
    session); returns the last /healthz."""
    deadline = time.monotonic() + timeout
    while True:
        health = await asyncio.to_thread(server.health)
        if health["sfu"]["transports"] == steady_transports and health["whipWhepSessions"] == 0:
            return health
        if time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.5)
