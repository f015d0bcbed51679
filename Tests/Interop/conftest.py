"""Shared fixtures for interop tests: a real `parley serve` on loopback.

These tests must run inside a network namespace that has only loopback (see Makefile's
`test-interop` and ../shared/TESTING.md), so no media ever leaves the machine.
"""
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PARLEY = os.environ.get("PARLEY_BIN", os.path.join(ROOT, ".build", "release", "parley"))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_media_ports(count=2):
    """A first port such that `count` ports from it are free for UDP and for TCP (each SFU worker
    takes a UDP port and the same TCP port for ICE-TCP)."""
    for _ in range(200):
        first = free_port(socket.SOCK_DGRAM)
        if first + count > 65000:
            continue
        try:
            for port in range(first, first + count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
    raise RuntimeError("no free run of media ports")


def stop_process(process, timeout=10):
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """`parley serve` on free loopback ports, its output in test-artifacts/NAME.log; `binary`, `env`
    and `log_level` for other builds (the churn test runs the AddressSanitizer one)."""

    def __init__(self, name, workers=2, extra_args=(), announce_ip="127.0.0.1", http_host="127.0.0.1",
                 binary=PARLEY, env=None, log_level="debug", start_timeout=20):
        if not os.path.exists(binary):
            raise FileNotFoundError(binary)
        self.http_port = free_port()
        self.udp_port = free_media_ports(workers)
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.log_path = os.path.join(ARTIFACTS, f"{name}.log")
        self.log = open(self.log_path, "w")
        # The SFU binds every address, as `make run` does; inside the test namespace that is only lo.
        self.process = subprocess.Popen(
            [binary, "serve", "--http-port", str(self.http_port), "--udp-port", str(self.udp_port),
             "--announce-ip", announce_ip, "--http-host", http_host, "--workers", str(workers),
             "--web-root", os.path.join(ROOT, "Web"), "--log-level", log_level, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.pid = self.process.pid
        self.url = f"http://127.0.0.1:{self.http_port}"
        deadline = time.time() + start_timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"parley exited early ({self.process.returncode}); see {self.log_path}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"parley did not answer /healthz; see {self.log_path}")

    def health(self):
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
            return json.loads(response.read())

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self):
        if self.log.closed:
            return
        stop_process(self.process)
        self.log.close()


@pytest.fixture
def parley(request):
    server = Server(request.node.name)
    yield server
    server.stop()
