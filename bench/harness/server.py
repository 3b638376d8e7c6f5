"""One `latchkey serve` process, the CLI, and what /proc says about a process."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")" field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    return int(fields[11]) + int(fields[12])


def processes_cpu_ticks(name):
    """utime + stime of every process whose command is `name` (e.g. the PostgreSQL backends)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        if comm == name:
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cli(binary, env, workdir, args, stdin=None):
    out = subprocess.run([binary, "--json", *args], cwd=workdir, env=env, input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"latchkey {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout) if out.stdout.strip() else None


class Server:
    """One `latchkey serve` process with a given environment."""

    def __init__(self, binary, workdir, env):
        self.binary = binary
        self.workdir = workdir
        self.env = env
        self.base = f"http://127.0.0.1:{int(env['LATCHKEY_SERVER__PORT'])}"
        self.proc = None

    def start(self, timeout=60):
        """Spawns the server; returns seconds from spawn to the first 200 on /healthz."""
        logf = open(os.path.join(self.workdir, "server.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.binary, "serve"], cwd=self.workdir, env=self.env, stdout=logf, stderr=subprocess.STDOUT
        )
        logf.close()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"latchkey serve exited with {self.proc.returncode}; see {self.workdir}/server.log")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError("latchkey serve did not become ready")
            time.sleep(0.002)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
