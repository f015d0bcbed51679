#!/usr/bin/env python3
"""Captures the seed corpora of the fuzz targets, fuzz/corpus/<target>/, from real traffic.

Run it in a network namespace with only loopback, so no media leaves the machine:

    sudo unshare -n bash -c 'ip link set lo up && .venv/bin/python scripts/capture-fuzz-corpus.py'

(`make test-deps` makes .venv with aiortc and selenium; `.build/release/parley` must exist,
PARLEY_BIN names another binary.) It runs a Parley cluster — redis-server, `parley sfu`,
`parley signal` — with a recording TCP proxy between Parley and Redis and another in front of the
SFU's control API, then:

- aiortc publishes through WHIP (twice: once asking for FIR instead of PLI, once adding the
  transport-wide sequence number extension so the SFU sends transport-wide feedback) and plays
  through WHEP, with RTP and RTCP recorded in plaintext around aiortc's SRTP (every 37th video
  packet held back, so NACKs and retransmissions happen);
- two headless Chromium instances meet through the web client (a host and a guest): the JSON the
  client sends on the signaling socket is recorded (`WebSocket.prototype.send` wrapped before the
  page loads), both chat, mute, share a screen, the host uses host controls, both leave;
- a raw socket on `lo` records every UDP datagram: STUN of aioice and Chromium and Parley's
  answers, and the RTP headers and extensions of SRTP packets (in clear; payloads encrypted);
- Redis replies come from the proxy (what Parley really gets) and from commands sent here on a
  raw socket (arrays, nil, errors, integers, pub/sub messages);
- the meetings API bodies sent here, and the SFU control API bodies `parley signal` sent.

Seeds also come from the repository: the Chromium 156 and aiortc 1.16 offers in
Tests/ParleyWireTests/Fixtures and the byte literals of Tests/ParleyWireTests/*.swift (the RFC
5769 STUN vectors among them). RFC 4571 streams are captured datagrams framed as ICE-TCP frames
them. Files are named by SHA-1, as libFuzzer names corpus files, and added to what is there
(`--clean` empties the directories first); each target keeps at most --limit files, chosen to
differ in shape (packet type, attributes, extensions, size), each at most 4 KB except SDP.
"""
import argparse
import asyncio
import collections
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
sys.path.insert(0, os.path.join(ROOT, "Tests", "Interop"))

MAX_SIZE = 4096
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
API_BODIES = ["POST /api/meetings", "PATCH /api/meetings/{meeting}", "POST /api/meetings/{meeting}/tokens", "POST /control/negotiate",
              "POST /control/close-transport", "POST /control/close-participant", "POST /control/blocked-media", "POST /control/viewport"]
"""The `api` target's first byte picks the body's type, in the order of Sources/ParleyFuzzTargets/APITarget.swift."""


class Corpus:
    """Inputs per target, at most `limit` each and `per_shape` of each shape."""

    def __init__(self, limit, per_shape=3):
        self.limit, self.per_shape = limit, per_shape
        self.inputs = collections.defaultdict(dict)
        self.shapes = collections.defaultdict(collections.Counter)

    def add(self, target, data, shape=None, large=False):
        if isinstance(data, str):
            data = data.encode()
        if not data or (len(data) > MAX_SIZE and not large):
            return
        inputs, shapes = self.inputs[target], self.shapes[target]
        key = shape if shape is not None else hashlib.sha1(data).hexdigest()
        if len(inputs) >= self.limit or shapes[key] >= self.per_shape:
            return
        digest = hashlib.sha1(data).hexdigest()
        if digest not in inputs:
            inputs[digest] = data
            shapes[key] += 1

    def write(self, clean):
        for target, inputs in sorted(self.inputs.items()):
            folder = os.path.join(CORPUS, target)
            os.makedirs(folder, exist_ok=True)
            if clean:
                for name in os.listdir(folder):
                    os.remove(os.path.join(folder, name))
            for digest, data in inputs.items():
                with open(os.path.join(folder, digest), "wb") as f:
                    f.write(data)
            print(f"corpus {target:14} {len(inputs):4} inputs, {sum(map(len, inputs.values())):8} bytes")


# --- Classifying packets ---------------------------------------------------------------------

RTCP_TARGETS = {(200, None): "rtcp-sr", (201, None): "rtcp-rr", (202, None): "rtcp-sdes", (203, None): "rtcp-bye",
                (205, 1): "rtcp-nack", (205, 15): "rtcp-twcc", (206, 1): "rtcp-pli", (206, 4): "rtcp-fir", (206, 15): "rtcp-remb"}


def is_stun(data):
    return len(data) >= 20 and data[0] < 4 and data[4:8] == b"\x21\x12\xa4\x42"


def is_rtcp(data):
    return len(data) >= 4 and 128 <= data[0] < 192 and 192 <= data[1] <= 223


def stun_shape(data):
    types, offset = [], 20
    while offset + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, offset)
        types.append(kind)
        offset += 4 + length + (-length % 4)
    return ("stun", data[0:2], tuple(types))


def rtp_shape(data):
    csrc, has_extension, offset = data[0] & 0x0F, data[0] & 0x10, 12 + 4 * (data[0] & 0x0F)
    ids = ()
    if has_extension and len(data) >= offset + 4:
        profile, words = struct.unpack_from("!HH", data, offset)
        ids = (profile, *extension_ids(data[offset + 4:offset + 4 + 4 * words], profile))
    return ("rtp", data[1], csrc, data[0] & 0x20, ids, len(data) // 400)


def extension_ids(block, profile):
    ids, offset = [], 0
    while offset < len(block):
        if block[offset] == 0:
            offset += 1
            continue
        if profile == 0xBEDE:
            ids.append(block[offset] >> 4)
            offset += 2 + (block[offset] & 0x0F)
        else:
            if offset + 1 >= len(block):
                break
            ids.append(block[offset])
            offset += 2 + block[offset + 1]
    return ids


def rtcp_packets(data):
    """The packets of a compound RTCP datagram, each as (type, format, bytes)."""
    packets, offset = [], 0
    while offset + 4 <= len(data):
        length = (struct.unpack_from("!H", data, offset + 2)[0] + 1) * 4
        if offset + length > len(data):
            break
        packets.append((data[offset + 1], data[offset] & 0x1F, data[offset:offset + length]))
        offset += length
    return packets


def add_packet(corpus, data, plaintext):
    """A captured datagram to the target its kind goes to."""
    if is_stun(data):
        corpus.add("stun", data, stun_shape(data))
    elif is_rtcp(data):
        if not plaintext:
            return  # SRTCP: encrypted after its first 8 bytes
        packets = rtcp_packets(data)
        corpus.add("rtcp-compound", data, ("compound", tuple((t, f) for t, f, _ in packets), len(data) // 100))
        for kind, fmt, packet in packets:
            target = RTCP_TARGETS.get((kind, fmt if kind >= 205 else None))
            if target:
                corpus.add(target, packet, (fmt, len(packet)))
    elif len(data) >= 12 and 128 <= data[0] < 192:
        corpus.add("rtp", data, rtp_shape(data) + (plaintext,))


def frame_rfc4571(corpus, datagrams):
    """ICE-TCP streams (RFC 4571) of captured datagrams: a length in two bytes before each. The
    first byte is the rfc4571 target's own: how it cuts the stream and the size of its buffer."""
    stun = [d for d in datagrams if is_stun(d)]
    media = [d for d in datagrams if not is_stun(d)]
    for index in range(40):
        chosen = (stun[index % len(stun):][:1] if stun else []) + media[index * 3:index * 3 + (index % 5) + 1]
        stream = b"".join(struct.pack("!H", len(d)) + d for d in chosen)
        if index % 4 == 3 and stream:
            stream = stream[:-(1 + index % 7)]  # a frame cut short: the reassembler keeps it waiting
        corpus.add("rfc4571", bytes([(index * 37) & 0xFF]) + stream[:MAX_SIZE - 1])


# --- Seeds in the repository -----------------------------------------------------------------

def repository_seeds(corpus):
    fixtures = os.path.join(ROOT, "Tests", "ParleyWireTests", "Fixtures")
    for name in sorted(os.listdir(fixtures)):
        with open(os.path.join(fixtures, name), "rb") as f:
            offer = f.read()
        corpus.add("sdp", offer, large=True)
        add_offer_messages(corpus, offer.decode())
    literal = re.compile(r'bytes\("""(.*?)"""\)|bytes\("([^"]*)"\)', re.S)
    tests = os.path.join(ROOT, "Tests", "ParleyWireTests")
    for name in sorted(os.listdir(tests)):
        if not name.endswith(".swift"):
            continue
        with open(os.path.join(tests, name)) as f:
            source = f.read()
        for match in literal.finditer(source):
            text = match.group(1) or match.group(2) or ""
            data = bytes.fromhex("".join(c for c in text if c in "0123456789abcdefABCDEF"))
            if not data:
                continue
            if name.startswith("CodecPayload"):
                # Payloads: in an RTP packet (V=2, PT 96), as the rtp target reads them.
                corpus.add("rtp", bytes.fromhex("806000010000000100000002") + data)
            elif name.startswith("STUN"):
                corpus.add("stun", data)
            elif name.startswith("RTP"):
                corpus.add("rtp", data)
            elif name.startswith("RTCP") or name.startswith("TransportWide"):
                add_packet(corpus, data, plaintext=True)


PARLEY_EXTENSIONS = ("sdes:mid", "rtp-stream-id", "ssrc-audio-level", "transport-wide-cc", "abs-send-time")


def compact_offer(sdp):
    """`sdp` with less in each m-line — Opus, RED, VP8, one H.264, one codec Parley refuses and
    their RTX; the header extensions Parley reads and one it does not; one candidate — so that a
    whole Chromium offer fits the 4 KB inputs of the fuzz targets (scripts/fuzz.sh)."""
    separator = "\r\n" if "\r\n" in sdp else "\n"
    sections = [[]]
    for line in sdp.split(separator):
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out = sections[0]
    for section in sections[1:]:
        names, apt = {}, {}
        for line in section:
            if match := re.match(r"a=rtpmap:(\d+) ([^/]+)", line):
                names[match.group(1)] = match.group(2).lower()
            if match := re.match(r"a=fmtp:(\d+) apt=(\d+)", line):
                apt[match.group(1)] = match.group(2)
        keep, h264, other = [], False, False
        for pt in section[0].split(" ")[3:]:
            name = names.get(pt, "")
            if name in ("opus", "red", "vp8") or (name == "h264" and not h264) or (name not in ("rtx", "h264", "ulpfec") and not other):
                keep.append(pt)
                h264 |= name == "h264"
                other |= name not in ("opus", "red", "vp8", "h264")
        keep += [pt for pt, primary in apt.items() if primary in keep]
        kept = [pt for pt in section[0].split(" ")[3:] if pt in keep]
        out.append(" ".join(section[0].split(" ")[:3] + kept))
        candidates = 0
        for line in section[1:]:
            match = re.match(r"a=(rtpmap|fmtp|rtcp-fb):(\d+) ", line)
            if match and match.group(2) not in keep:
                continue
            if line.startswith("a=extmap:") and not any(name in line for name in PARLEY_EXTENSIONS):
                continue
            if line.startswith("a=candidate:"):
                candidates += 1
                if candidates > 1:
                    continue
            out.append(line)
    return separator.join(out)


def add_offer_messages(corpus, sdp, sources=None):
    """An offer as the web client sends it and as `parley signal` hands it to an SFU; a long one
    also compacted (`compact_offer`)."""
    if len(sdp) > 4096 and compact_offer(sdp) != sdp:
        add_offer_messages(corpus, compact_offer(sdp), sources)
    size = len(sdp) // 4000
    corpus.add("sdp", sdp, large=True)
    corpus.add("signaling", json.dumps({"type": "offer", "sdp": sdp, "sources": sources or {}}), ("offer", size), large=True)
    for role in ("participant", "whip", "whep"):
        body = {"meetingID": "fuzz-capture", "participantID": "p-" + role, "role": role, "sdp": sdp, "sources": sources or {}}
        corpus.add("api", bytes([API_BODIES.index("POST /control/negotiate")]) + json.dumps(body).encode(), (role, size), large=True)


# --- Recording TCP proxies -------------------------------------------------------------------

class RecordingProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target; keeps every chunk read, by direction."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.to_server, self.to_client = [], []
        self.streams = []  # per connection: (client bytes, server bytes)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            stream = (bytearray(), bytearray())
            self.streams.append(stream)
            threading.Thread(target=self.pump, args=(client, server, self.to_server, stream[0]), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, self.to_client, stream[1]), daemon=True).start()

    @staticmethod
    def pump(source, sink, chunks, whole):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                chunks.append(data)
                whole.extend(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def http_request_bodies(stream):
    """(method, path, body) of each HTTP/1.1 request in a client's byte stream."""
    requests, offset = [], 0
    while True:
        end = stream.find(b"\r\n\r\n", offset)
        if end < 0:
            return requests
        head = stream[offset:end].decode("latin-1").split("\r\n")
        method, path = head[0].split(" ")[:2]
        headers = {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in head[1:] if ":" in line}
        offset = end + 4
        if "chunked" in headers.get("transfer-encoding", ""):
            body = bytearray()
            while True:
                line_end = stream.find(b"\r\n", offset)
                size = int(stream[offset:line_end].split(b";")[0], 16)
                offset = line_end + 2
                body += stream[offset:offset + size]
                offset += size + 2
                if size == 0:
                    break
        else:
            size = int(headers.get("content-length", "0"))
            body = stream[offset:offset + size]
            offset += size
        requests.append((method, path, bytes(body)))


# --- Redis -----------------------------------------------------------------------------------

def resp_command(*arguments):
    out = b"*%d\r\n" % len(arguments)
    for argument in arguments:
        argument = argument if isinstance(argument, bytes) else str(argument).encode()
        out += b"$%d\r\n%s\r\n" % (len(argument), argument)
    return out


def resp_length(data, offset=0):
    """The length of the one RESP2 value at `offset`, or None while incomplete."""
    end = data.find(b"\r\n", offset)
    if end < 0:
        return None
    marker, line = data[offset:offset + 1], data[offset + 1:end]
    after = end + 2
    if marker in (b"+", b"-", b":"):
        return after - offset
    count = int(line)
    if marker == b"$":
        return after - offset if count < 0 else (after + count + 2 - offset if len(data) >= after + count + 2 else None)
    for _ in range(max(count, 0)):
        length = resp_length(data, after)
        if length is None:
            return None
        after += length
    return after - offset


def redis_replies(port):
    """Raw replies of a real redis-server to commands of every reply type."""
    replies = []
    connection = socket.create_connection(("127.0.0.1", port))
    buffer = b""

    def call(*arguments):
        nonlocal buffer
        connection.sendall(resp_command(*arguments))
        while (length := resp_length(buffer)) is None:
            buffer += connection.recv(65536)
        reply, buffer = buffer[:length], buffer[length:]
        replies.append(reply)
        return reply

    call("PING")
    call("SET", "fuzz:key", "value")
    call("SET", "fuzz:nx", "1", "NX", "PX", "60000")
    call("SET", "fuzz:nx", "2", "NX", "PX", "60000")  # nil
    call("GET", "fuzz:key")
    call("GET", "fuzz:missing")
    call("SET", "fuzz:binary", bytes(range(256)))
    call("GET", "fuzz:binary")
    call("INCR", "fuzz:counter")
    call("INCRBY", "fuzz:counter", "-9223372036854775807")
    call("HSET", "fuzz:hash", "ada", json.dumps({"name": "Ada", "role": "host"}), "bob", json.dumps({"name": "Bob"}))
    call("HGETALL", "fuzz:hash")
    call("HGETALL", "fuzz:none")
    call("HMGET", "fuzz:hash", "ada", "nobody")
    call("GET", "fuzz:hash")  # WRONGTYPE error
    call("NOSUCHCOMMAND")
    call("RPUSH", "fuzz:list", "a", "", "c")
    call("LRANGE", "fuzz:list", "0", "-1")
    call("SADD", "fuzz:set", "x", "y")
    call("SMEMBERS", "fuzz:set")
    call("EXPIRE", "fuzz:key", "30")
    call("TTL", "fuzz:key")
    call("DEL", "fuzz:key", "fuzz:missing")
    call("EVAL", "return {1, 'two', false, {3, {'four'}}, redis.status_reply('OK')}", "0")
    call("EVAL", "return redis.error_reply('refused removed')", "0")
    call("EVAL", "return nil", "0")
    call("EVAL", "return {}", "0")
    call("EVAL", "return cjson.encode({ok = true})", "0")
    call("EVAL", "return 3.9", "0")
    call("SCAN", "0", "MATCH", "fuzz:*", "COUNT", "100")
    call("MULTI")
    call("SET", "fuzz:t", "1")
    call("GET", "fuzz:t")
    call("EXEC")
    call("CLIENT", "SETNAME", "fuzz")
    call("PUBLISH", "fuzz:channel", "nobody listens")
    call("INFO", "server")
    # Pub/sub: the subscriber's pushes as they arrive.
    subscriber = socket.create_connection(("127.0.0.1", port))
    subscriber.sendall(resp_command("SUBSCRIBE", "fuzz:channel", "sfu-events") + resp_command("PSUBSCRIBE", "fuzz:*"))
    time.sleep(0.2)
    for message in ("hello", json.dumps({"node": "sfu-1", "event": {"transportClosed": {"meetingID": "m"}}}), ""):
        call("PUBLISH", "fuzz:channel", message)
    time.sleep(0.2)
    subscriber.settimeout(1)
    pushes = b""
    try:
        while chunk := subscriber.recv(65536):
            pushes += chunk
            if len(pushes) > 1500:
                break
    except socket.timeout:
        pass
    replies.append(pushes)
    offset = 0
    while (length := resp_length(pushes, offset)) is not None and offset < len(pushes):
        replies.append(pushes[offset:offset + length])
        offset += length
    connection.close()
    subscriber.close()
    # Pipelined: several replies in one read.
    replies.append(b"".join(replies[:12]))
    return replies


# --- UDP on lo -------------------------------------------------------------------------------

class LoopbackSniffer:
    """Every UDP datagram on `lo`, from an AF_PACKET socket (needs CAP_NET_RAW: run as root)."""

    def __init__(self):
        self.datagrams = []
        self.socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.socket.bind(("lo", 0))
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.socket.settimeout(0.2)
        while self.running:
            try:
                frame, (_, _, kind, _, _) = self.socket.recvfrom(65600)
            except socket.timeout:
                continue
            # Only frames leaving lo (PACKET_OUTGOING = 4), or each datagram would come twice.
            if kind != 4 or len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            header = (ip[0] & 0x0F) * 4
            if ip[9] == 17:
                self.datagrams.append(bytes(ip[header + 8:]))

    def stop(self):
        self.running = False
        self.thread.join()
        return self.datagrams


# --- The cluster -----------------------------------------------------------------------------

def free_port():
    from conftest import free_port as conftest_free_port
    return conftest_free_port()


class Cluster:
    """redis-server, `parley sfu` and `parley signal`, with recording proxies in front of Redis
    and of the SFU's control API."""

    def __init__(self, parley, folder):
        from conftest import free_media_ports
        self.processes = []
        self.folder = folder
        logs = os.path.join(ROOT, "test-artifacts")
        os.makedirs(logs, exist_ok=True)

        def start(name, command):
            log = open(os.path.join(logs, f"capture-{name}.log"), "w")
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

        redis_port = free_port()
        start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        wait_tcp(redis_port)
        self.redis_port = redis_port
        self.redis = RecordingProxy(redis_port)
        redis_url = f"redis://127.0.0.1:{self.redis.port}"
        token = os.path.join(folder, "control-token")
        with open(token, "w") as f:
            f.write("fuzz-capture-control-token\n")
        control = free_port()
        self.control = RecordingProxy(control)
        start("sfu", [parley, "sfu", "--redis", redis_url, "--node-id", "sfu-capture", "--udp-port", str(free_media_ports(2)),
                      "--announce-ip", "127.0.0.1", "--workers", "1", "--control-port", str(control),
                      "--control-url", f"http://127.0.0.1:{self.control.port}", "--control-token-file", token, "--log-level", "debug"])
        self.http_port = free_port()
        start("signal", [parley, "signal", "--redis", redis_url, "--http-port", str(self.http_port), "--control-token-file", token,
                         "--web-root", os.path.join(ROOT, "Web"), "--log-level", "debug"])
        self.url = f"http://127.0.0.1:{self.http_port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if json.loads(response.read())["sfu"]["workers"] >= 1:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the cluster did not come up; see test-artifacts/capture-*.log")

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_tcp(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def api(url, method, path, body, token=None):
    """A meetings API call whose body goes into the corpus too."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return data, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return data, json.loads(error.read() or b"{}")


# --- aiortc ----------------------------------------------------------------------------------

class AiortcRecorder:
    """Plaintext RTP and RTCP around aiortc's SRTP: what it protects and sends, what it receives
    and unprotected. Holds back every 37th outgoing video packet (the SFU NACKs it) and drops every
    41st incoming one (aiortc NACKs it); adds the transport-wide sequence number to outgoing RTP
    of transports in `twcc` so the SFU answers with transport-wide feedback."""

    def __init__(self):
        from aiortc.rtcdtlstransport import RTCDtlsTransport
        self.plaintext = []
        self.twcc = set()
        self.twcc_sequence = 0
        self.sent = self.received = 0
        recorder = self
        send, handle_rtcp, handle_rtp = RTCDtlsTransport._send_rtp, RTCDtlsTransport._handle_rtcp_data, RTCDtlsTransport._handle_rtp_data

        async def _send_rtp(transport, data):
            if not is_rtcp(data):
                recorder.sent += 1
                if len(data) > 400 and recorder.sent % 37 == 0:
                    return
                if id(transport) in recorder.twcc:
                    recorder.twcc_sequence = (recorder.twcc_sequence + 1) & 0xFFFF
                    data = add_extension(data, 5, struct.pack("!H", recorder.twcc_sequence))
            recorder.plaintext.append(bytes(data))
            await send(transport, data)

        async def _handle_rtcp_data(transport, data):
            recorder.plaintext.append(bytes(data))
            await handle_rtcp(transport, data)

        async def _handle_rtp_data(transport, data, arrival_time_ms):
            recorder.plaintext.append(bytes(data))
            recorder.received += 1
            if recorder.received % 41 == 0:
                return
            await handle_rtp(transport, data, arrival_time_ms)

        RTCDtlsTransport._send_rtp, RTCDtlsTransport._handle_rtcp_data, RTCDtlsTransport._handle_rtp_data = \
            _send_rtp, _handle_rtcp_data, _handle_rtp_data


def add_extension(packet, element_id, value):
    """`packet` with a one-byte-header extension element (RFC 8285) added."""
    first, csrc = packet[0], 12 + 4 * (packet[0] & 0x0F)
    element = bytes([(element_id << 4) | (len(value) - 1)]) + value
    if first & 0x10:
        profile, words = struct.unpack_from("!HH", packet, csrc)
        if profile != 0xBEDE:
            return packet
        block = packet[csrc + 4:csrc + 4 + 4 * words].rstrip(b"\x00") + element
        rest = packet[csrc + 4 + 4 * words:]
    else:
        block, rest = element, packet[csrc:]
    block += b"\x00" * (-len(block) % 4)
    return bytes([first | 0x10]) + packet[1:csrc] + struct.pack("!HH", 0xBEDE, len(block) // 4) + block + rest


async def aiortc_session(url, corpus, recorder):
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack
    from test_whip_whep_aiortc import NoiseVideoTrack, config, http

    async def publish(meeting, munge=None, twcc=False):
        pc = RTCPeerConnection(config())
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        pc.addTransceiver(NoiseVideoTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        if munge:
            offer = munge(offer)
        add_offer_messages(corpus, offer)
        status, headers, answer = await asyncio.to_thread(http, "POST", f"{url}/whip/{meeting}", offer)
        assert status == 201, answer
        corpus.add("sdp", answer, large=True)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        if twcc:
            recorder.twcc.add(id(pc.getTransceivers()[0].sender.transport))
        return pc

    def fir_only(sdp):
        # A publisher that asks for keyframes with FIR alone (RFC 5104): the SFU sends FIR to it.
        lines = [line for line in sdp.split("\r\n") if not line.endswith(" nack pli")]
        out = []
        for line in lines:
            out.append(line)
            if line.startswith("a=rtcp-fb:") and line.endswith(" nack"):
                out.append(line[:-len("nack")] + "ccm fir")
        return "\r\n".join(out)

    def with_twcc(sdp):
        out = []
        for line in sdp.split("\r\n"):
            out.append(line)
            if line.startswith("a=mid:"):
                out.append(f"a=extmap:5 {TWCC_URI}")
        return "\r\n".join(out)

    publishers = [await publish("fuzz-aiortc"), await publish("fuzz-aiortc-fir", fir_only), await publish("fuzz-aiortc-twcc", with_twcc, twcc=True)]
    players = []
    for meeting in ("fuzz-aiortc", "fuzz-aiortc-fir"):
        pc = RTCPeerConnection(config())
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        add_offer_messages(corpus, pc.localDescription.sdp)
        status, _, answer = await asyncio.to_thread(http, "POST", f"{url}/whep/{meeting}", pc.localDescription.sdp)
        assert status == 201, answer
        corpus.add("sdp", answer, large=True)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        players.append(pc)
    await asyncio.sleep(10)
    for pc in players + publishers:
        await pc.close()  # RTCP BYE
    await asyncio.sleep(0.5)


# --- Chromium --------------------------------------------------------------------------------

RECORD_SIGNALING = """
// Kept in sessionStorage: the page may load again (joining as host, leaving) and lose globals.
const sent = () => JSON.parse(sessionStorage.getItem('parleySent') || '[]');
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.__parleySocket = this;
  if (typeof data === 'string') sessionStorage.setItem('parleySent', JSON.stringify([...sent(), data]));
  return send.call(this, data);
};
"""


def chromium_session(url, corpus):
    from test_browsers_chromium import Browser, receiving_from_everyone, wait_for
    body, created = api(url, "POST", "/api/meetings", {"id": "fuzz-browsers", "title": "Fuzz capture", "allowSelfUnmute": True})
    corpus.add("api", bytes([API_BODIES.index("POST /api/meetings")]) + body)
    host_url = created["hostURL"].replace("#", "?name=Ada#")
    browsers = [Browser("capture-host"), Browser("capture-guest")]
    try:
        for browser in browsers:
            browser.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_SIGNALING})
        browsers[0].open(host_url)
        browsers[1].open(f"{url}/m/fuzz-browsers?name=Bob")
        ids = [wait_for(b.participant_id, 30) for b in browsers]
        assert all(ids), "the browsers did not join"
        wait_for(lambda: all(receiving_from_everyone(b, [ids[1 - n]]) for n, b in enumerate(browsers)), 40)
        host, guest = browsers
        for browser, text in ((host, "Hello from Ada"), (guest, "Grüße von Bob ✓")):
            browser.js("document.getElementById('toggle-chat').click();"
                       "document.getElementById('chat-input').value = arguments[0];"
                       "document.getElementById('chat-form').requestSubmit();", text)
        for button in ("toggle-mic", "toggle-camera", "toggle-mic", "toggle-camera"):
            guest.js(f"document.getElementById('{button}').click()")
            time.sleep(0.5)
        host.js("document.getElementById('toggle-screen').click()")
        time.sleep(4)
        host.js("document.getElementById('toggle-screen').click()")
        # Host controls and a report, in the shape host.js sends them.
        for action in ("mute-audio", "allow-audio", "stop-video", "allow-video", "make-cohost", "remove-cohost"):
            host.js("window.__parleySocket.send(JSON.stringify({type: 'host', action: arguments[0], participantId: arguments[1]}))", action, ids[1])
            time.sleep(0.3)
        for action in ("lock", "unlock", "hosts-only-screen-share", "everyone-screen-share", "mute-all-audio", "admit-all"):
            host.js("window.__parleySocket.send(JSON.stringify({type: 'host', action: arguments[0]}))", action)
            time.sleep(0.3)
        guest.js("window.__parleySocket.send(JSON.stringify({type: 'report', participantId: arguments[0], reason: 'testing reports'}))", ids[0])
        guest.js("window.__parleySocket.send(JSON.stringify({type: 'ping', id: 'capture-1'}))")
        time.sleep(3)
        # The host's API calls: settings and a token.
        token = created["hostToken"]
        for body in ({"title": "Renamed", "waitingRoom": False}, {"password": "correct horse"}, {"password": ""},
                     {"allowedDomains": ["example.com", "parley.test"], "requireSignIn": False}, {"locked": True}, {"locked": False}):
            data, _ = api(url, "PATCH", "/api/meetings/fuzz-browsers", body, token)
            corpus.add("api", bytes([API_BODIES.index("PATCH /api/meetings/{meeting}")]) + data)
        for body, bearer in (({"name": "WHIP camera"}, token), ({"name": "Guest", "admitted": True}, token), ({"name": "Eve"}, None),
                             ({"name": "Eve", "password": "wrong"}, None)):
            data, _ = api(url, "POST", "/api/meetings/fuzz-browsers/tokens", body, bearer)
            corpus.add("api", bytes([API_BODIES.index("POST /api/meetings/{meeting}/tokens")]) + data)
        for body in ({"id": "board-2026", "title": "Board", "password": "correct horse", "waitingRoom": True, "requireSignIn": False,
                      "allowedDomains": [], "lockOnStart": False, "hostsOnlyScreenShare": True, "allowSelfUnmute": False}, {}):
            data, _ = api(url, "POST", "/api/meetings", body)
            corpus.add("api", bytes([API_BODIES.index("POST /api/meetings")]) + data)
        for browser in browsers:
            browser.js("document.getElementById('leave').click()")
        time.sleep(1)
        for browser in browsers:
            for message in json.loads(browser.js("return sessionStorage.getItem('parleySent')") or "[]"):
                parsed = json.loads(message)
                corpus.add("signaling", message, ("signaling", parsed.get("type"), parsed.get("action"), len(message) // 1000), large=True)
                if parsed.get("type") == "offer":
                    add_offer_messages(corpus, parsed["sdp"], parsed.get("sources"))
    finally:
        for browser in browsers:
            browser.quit()


# --- Main ------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="empty each corpus directory first")
    parser.add_argument("--limit", type=int, default=200, help="at most this many inputs per target")
    parser.add_argument("--no-browsers", action="store_true", help="skip the Chromium session")
    arguments = parser.parse_args()
    parley = os.environ.get("PARLEY_BIN", os.path.join(ROOT, ".build", "release", "parley"))

    corpus = Corpus(arguments.limit)
    repository_seeds(corpus)
    recorder = AiortcRecorder()
    sniffer = LoopbackSniffer()
    with tempfile.TemporaryDirectory(prefix="parley-capture-") as folder:
        cluster = Cluster(parley, folder)
        try:
            for reply in redis_replies(cluster.redis_port):
                corpus.add("resp", reply)
            asyncio.run(aiortc_session(cluster.url, corpus, recorder))
            if not arguments.no_browsers:
                chromium_session(cluster.url, corpus)
            time.sleep(1)
        finally:
            cluster.stop()
            datagrams = sniffer.stop()
    # Parley's own Redis traffic: each read it got, and whole streams cut to size.
    for chunk in cluster.redis.to_client:
        corpus.add("resp", chunk[:MAX_SIZE], ("read", chunk[:1], len(chunk) // 64))
    for _, replies in cluster.redis.streams:
        corpus.add("resp", bytes(replies[:MAX_SIZE]))
    for client, _ in cluster.control.streams:
        for method, path, body in http_request_bodies(bytes(client)):
            kind = f"{method} {path.split('?')[0]}"
            if kind in API_BODIES and body:
                corpus.add("api", bytes([API_BODIES.index(kind)]) + body, (kind, len(body) // 4000), large=kind.endswith("negotiate"))
    for data in recorder.plaintext:
        add_packet(corpus, data, plaintext=True)
    for data in datagrams:
        add_packet(corpus, data, plaintext=False)
    frame_rfc4571(corpus, [d for d in datagrams if len(d) <= 1200] + recorder.plaintext)
    corpus.write(arguments.clean)


if __name__ == "__main__":
    main()
