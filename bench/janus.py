"""Janus (Debian's `janus` package) as the SFU to compare Parley with, set up for a loopback-only namespace.

Janus never gathers ICE candidates on `lo`, so the namespace gets a veth pair with 127.0.0.2 on one end,
and Janus is told to use only that address. The load generator then binds 127.0.0.2 as well (replies
from 127.0.0.2 to 127.0.0.1 fail). Everything stays inside the namespace the caller made.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

MEDIA_HOST = "127.0.0.2"
PLUGINS_KEPT = {"libjanus_videoroom.so"}
TRANSPORTS_KEPT = {"libjanus_websockets.so"}
PLUGINS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus/plugins"
TRANSPORTS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus/transports"


def ensure_media_address():
    """Adds the veth pair carrying 127.0.0.2 (once per namespace)."""
    if MEDIA_HOST in subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout:
        return
    for command in (["ip", "link", "add", "jv0", "type", "veth", "peer", "name", "jv1"],
                    ["ip", "addr", "add", f"{MEDIA_HOST}/32", "dev", "jv0"],
                    ["ip", "link", "set", "jv0", "up"], ["ip", "link", "set", "jv1", "up"]):
        subprocess.run(command, check=True)


def _shared_objects(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".so"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Janus:
    """A Janus process with only the VideoRoom plugin and the WebSocket transport, on loopback."""

    def __init__(self, binary="janus"):
        ensure_media_address()
        self.folder = tempfile.mkdtemp(prefix="parley-janus-")
        self.port = _free_port()
        disabled_plugins = ",".join(p for p in _shared_objects(PLUGINS_FOLDER) if p not in PLUGINS_KEPT)
        disabled_transports = ",".join(t for t in _shared_objects(TRANSPORTS_FOLDER) if t not in TRANSPORTS_KEPT)
        with open("/etc/janus/janus.jcfg") as f:
            config = f.read()
        config = config.replace('configs_folder = "/etc/janus"', f'configs_folder = "{self.folder}"')
        config = re.sub(r"\bnat: \{", f'nat: {{\n\tice_enforce_list = "{MEDIA_HOST}"', config, count=1)
        config = re.sub(r"\bplugins: \{", f'plugins: {{\n\tdisable = "{disabled_plugins}"', config, count=1)
        config = re.sub(r"\btransports: \{", f'transports: {{\n\tdisable = "{disabled_transports}"', config, count=1)
        config = re.sub(r"\bloggers: \{", 'loggers: {\n\tdisable = "libjanus_jsonlog.so"', config, count=1)
        with open(os.path.join(self.folder, "janus.jcfg"), "w") as f:
            f.write(config)
        with open(os.path.join(self.folder, "janus.transport.websockets.jcfg"), "w") as f:
            f.write("general: {\n\tjson = \"plain\"\n\tws = true\n\tws_port = %d\n\tws_ip = \"127.0.0.1\"\n\twss = false\n}\n"
                    "admin: {\n\tadmin_ws = false\n\tadmin_wss = false\n}\n" % self.port)
        shutil.copy("/etc/janus/janus.plugin.videoroom.jcfg", self.folder)
        self.log = open(os.path.join(self.folder, "janus.log"), "w")
        self.process = subprocess.Popen([binary, "-F", self.folder, "-C", os.path.join(self.folder, "janus.jcfg"), "-d", "3"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"ws://127.0.0.1:{self.port}"
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"janus exited at start: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"janus did not open its WebSocket port: {self.log_tail()}")

    def log_tail(self, length=2000):
        self.log.flush()
        with open(os.path.join(self.folder, "janus.log")) as f:
            return f.read()[-length:]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
