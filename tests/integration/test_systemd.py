"""systemd: the notify protocol against a real pgwarden (READY=1 once it listens, RELOADING=1 then READY=1 around
every reload, a refused one included, STOPPING=1 when it drains), and examples/systemd/pgwarden.service under
systemd-analyze."""
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

import harness

EXAMPLES = harness.ROOT / "examples" / "systemd"
UNIT = EXAMPLES / "pgwarden.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="environment: systemd-analyze is not installed (Debian package systemd)")


class NotifyListener:
    """The NOTIFY_SOCKET end, as systemd holds it: a datagram socket (in a short directory: sun_path is 108 bytes)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pgw-sd-"))
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o777)

    def next(self, deadline, proc=None):
        """The next datagram as {KEY: value}; TimeoutError at the deadline, RuntimeError if proc exits first."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no notification before the deadline")
            self.sock.settimeout(min(left, 0.2))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"pgwarden exited with {proc.returncode} while a notification was awaited")
                continue
            return dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)

    def wait_for(self, key, value="1", timeout=20.0, proc=None):
        """Receives until a message has key=value; returns it and the messages that came before it."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            m = self.next(deadline, proc)
            if m.get(key) == value:
                return m, before
            before.append(m)

    def assert_quiet(self, seconds):
        """Nothing arrives within `seconds`."""
        with pytest.raises(TimeoutError):
            m = self.next(time.monotonic() + seconds)
            pytest.fail(f"unexpected notification {m}")

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify(monkeypatch):
    n = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", str(n.path))  # inherited by every pgwarden this test starts
    yield n
    n.close()


def config(env, extra_proxy=""):
    """What follows [proxy] listen = [...] in pgwarden.toml (harness.Pgwarden writes that first line)."""
    return f"""workers = 2
shutdown_timeout = "5s"
{extra_proxy}
[client_tls]
mode = "require"
cert = "{env.certs.server_crt}"
key = "{env.certs.server_key}"

[server_tls]
mode = "verify-full"
ca = "{env.certs.ca_crt}"

[auth]
type = "scram-sha-256"
file = "{env.userlist()}"

[pool]
mode = "session"

[[database]]
name = "app"
host = "localhost"
port = {env.cluster.port}

[log]
level = "debug"
"""


def start(env, name="pgw"):
    """pgwarden without waiting for its port: the test waits for READY=1 instead."""
    pgw = harness.Pgwarden(env.tmp / name, config(env), wait=False)
    env.instances.append(pgw)  # stopped, and its log checked, by the env fixture
    return pgw


def wait_for_log(pgw, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while text not in pgw.log():
        assert time.monotonic() < deadline, f"{text!r} not in pgwarden's log after {timeout}s"
        time.sleep(0.05)


def test_ready_is_sent_once_the_listeners_accept_connections(env, notify):
    pgw = start(env)
    ready, before = notify.wait_for("READY", proc=pgw.proc)
    # The moment READY=1 arrives a client must get through: systemd starts the units ordered after this one then.
    with socket.create_connection(("127.0.0.1", pgw.port), timeout=2):
        pass
    assert before == [], f"notifications before READY=1: {before}"
    assert ready.get("STATUS") == "serving with 2 worker threads"
    env.assert_serves(pgw)
    notify.assert_quiet(0.5)  # READY=1 once, not per worker or per listener


def test_reload_is_bracketed_by_reloading_and_ready_even_when_refused(env, notify):
    pgw = start(env)
    notify.wait_for("READY", proc=pgw.proc)
    good = pgw.config_path.read_text()

    # A reload that applies: RELOADING=1 (with the MONOTONIC_USEC Type=notify-reload needs), then READY=1.
    pgw.config_path.write_text(good.replace("workers = 2", "workers = 2\nmax_client_conn = 500"))
    pgw.signal(signal.SIGHUP)
    ready, before = notify.wait_for("READY", proc=pgw.proc, timeout=15)
    assert [m.get("RELOADING") for m in before] == ["1"], before
    assert re.fullmatch(r"\d+", before[0].get("MONOTONIC_USEC", "")), before
    # CLOCK_MONOTONIC in microseconds, the clock systemd compares it with (Python's monotonic is the same clock).
    assert abs(int(before[0]["MONOTONIC_USEC"]) / 1e6 - time.monotonic()) < 30
    assert "reloaded" in pgw.log()
    env.assert_serves(pgw)

    # A config that does not validate: refused as a whole, READY=1 all the same, and the old config serves on.
    pgw.config_path.write_text(good.replace("workers = 2", "workers = 2\nmax_client_con = 5"))
    pgw.signal(signal.SIGHUP)
    ready, before = notify.wait_for("READY", proc=pgw.proc, timeout=15)
    assert [m.get("RELOADING") for m in before] == ["1"], before
    assert "reload refused" in pgw.log() and "max_client_con" in pgw.log()
    assert pgw.proc.poll() is None
    env.assert_serves(pgw)

    # A certificate that is gone (the config itself is fine): refused too, READY=1 too.
    broken_cert = good.replace(str(env.certs.server_crt), str(env.tmp / "missing.crt"))
    pgw.config_path.write_text(broken_cert)
    pgw.signal(signal.SIGHUP)
    ready, before = notify.wait_for("READY", proc=pgw.proc, timeout=15)
    assert [m.get("RELOADING") for m in before] == ["1"], before
    assert "missing.crt" in pgw.log()
    env.assert_serves(pgw)
    notify.assert_quiet(0.3)


def test_sigterm_sends_stopping_and_the_drain_exits(env, notify):
    pgw = start(env)
    notify.wait_for("READY", proc=pgw.proc)
    env.assert_serves(pgw)
    pgw.signal(signal.SIGTERM)
    stopping, before = notify.wait_for("STOPPING", timeout=10)
    assert before == []
    assert pgw.proc.wait(20) == 0


def test_a_notify_socket_nobody_reads_does_not_stop_pgwarden(env, monkeypatch, tmp_path):
    # NOTIFY_SOCKET set but nothing bound there (a unit with the wrong Type=, a stale variable): logged, served.
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody"))
    pgw = env.start("stale")
    env.assert_serves(pgw)
    wait_for_log(pgw, 'systemd notification "READY=1')
    assert "not sent" in pgw.log()
    # Without NOTIFY_SOCKET (not under systemd) nothing is attempted at all.
    monkeypatch.delenv("NOTIFY_SOCKET")
    quiet = env.start("plain")
    env.assert_serves(quiet)
    quiet.signal(signal.SIGHUP)
    wait_for_log(quiet, "reloaded")
    assert "systemd notification" not in quiet.log()


# ---------------------------------------------------------------------------------------------------------------
# The example unit


def directives(text):
    """{Key: [values]} over all sections of a unit file."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|min|m|h)", duration)
    assert m, duration
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600}[unit]


def test_unit_runs_pgwarden_as_notify_service_with_its_signals():
    d = directives(UNIT.read_text())
    cfg = tomllib.loads((EXAMPLES / "pgwarden.toml").read_text())
    assert d["Type"] == ["notify"]
    assert d["ExecStart"] == ["/usr/bin/pgwarden --config /etc/pgwarden/pgwarden.toml"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["KillSignal"] == ["SIGTERM"]
    assert d["User"] == ["pgwarden"] and d["Group"] == ["pgwarden"]
    # systemd's SIGKILL must not cut the drain short.
    assert seconds(d["TimeoutStopSec"][0]) > seconds(cfg["proxy"]["shutdown_timeout"])
    # The only writable place is the audit directory the example config writes to.
    assert d["ProtectSystem"] == ["strict"]
    assert d["ReadWritePaths"] == [str(Path(cfg["audit"]["path"]).parent)]
    assert d["CapabilityBoundingSet"] == [""]
    assert d["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert d["LimitNOFILE"] == ["65536"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "MemoryDenyWriteExecute",
                "LockPersonality", "RestrictNamespaces", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups"):
        assert d.get(key) == ["yes"], key
    assert "@system-service" in d["SystemCallFilter"]


def unit_with_binary_under_test(tmp_path):
    """`systemd-analyze verify` checks that ExecStart's program exists: point the unit at the one under test."""
    binary = Path(harness.PGWARDEN).resolve()
    assert binary.is_file(), f"no pgwarden at {binary}"
    path = tmp_path / "pgwarden.service"
    path.write_text(UNIT.read_text().replace("/usr/bin/pgwarden", str(binary)))
    return path


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path):
    path = unit_with_binary_under_test(tmp_path)
    r = harness.run([SYSTEMD_ANALYZE, "verify", str(path)], cwd=tmp_path, timeout=60)
    # Warnings (unknown keys, bad values) do not change the exit status: any line about our unit fails.
    ours = [l for l in (r.stdout + r.stderr).splitlines() if "pgwarden" in l]
    assert r.returncode == 0 and not ours, f"{r.stdout}{r.stderr}"


@needs_systemd_analyze
def test_unit_sandbox_rates_ok_in_systemd_analyze_security(tmp_path):
    path = unit_with_binary_under_test(tmp_path)
    r = harness.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--threshold=20", str(path)], cwd=tmp_path,
                    timeout=60)
    level = re.search(r"Overall exposure level for pgwarden\.service: ([\d.]+)", r.stdout)
    assert level, f"{r.stdout}{r.stderr}"
    assert r.returncode == 0 and float(level.group(1)) <= 2.0, r.stdout
