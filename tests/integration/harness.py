"""Integration harness: certificates, a real PostgreSQL 15 cluster, pgwarden processes and wire-level helpers.

Everything runs on loopback with ports picked free at run time; every process started here is stopped by PID.
"""
import base64
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PGWARDEN = Path(os.environ.get("PGWARDEN_BIN", ROOT / "build" / "proxy" / "pgwarden"))
IS_ROOT = os.geteuid() == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, host="127.0.0.1", timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_until(predicate, timeout=15.0, what="condition"):
    """Polls predicate() every 50 ms until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


# ---------------------------------------------------------------------------------------------------------------
# Certificates


class Certs:
    """A CA, a server certificate for localhost/127.0.0.1/::1, client certificates, and an unrelated CA."""

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_crt, self.ca_key = self._ca("ca", "pgwarden-test-ca")
        self.other_ca_crt, self.other_ca_key = self._ca("other-ca", "unrelated-ca")
        self.server_crt, self.server_key = self.issue(
            "server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n")

    def _ca(self, name, cn):
        crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", crt, "-days", "3", "-subj", f"/CN={cn}",
                      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return crt, key

    def issue(self, name, cn, extensions="extendedKeyUsage=clientAuth\n", ca=None):
        ca_crt, ca_key = ca or (self.ca_crt, self.ca_key)
        crt, key, csr, ext = (self.dir / f"{name}.crt", self.dir / f"{name}.key", self.dir / f"{name}.csr",
                              self.dir / f"{name}.ext")
        ext.write_text(extensions)
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                      "-out", csr, "-subj", f"/CN={cn}")
        self._openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
                      "-days", "3", "-extfile", ext)
        os.chmod(key, 0o600)
        return crt, key

    @staticmethod
    def _openssl(*args):
        r = run(["openssl", *map(str, args)])
        if r.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {r.stderr}")


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL


# PostgreSQL's own statement log, as JSON lines in DATA/log/statements.json: what the audit tests compare with.
STATEMENT_LOG_CONF = """
logging_collector = on
log_destination = 'jsonlog'
log_directory = 'log'
log_filename = 'statements.log'
log_statement = 'mod'
log_min_error_statement = panic
"""


class PostgresCluster:
    """initdb'd in a temp dir, run as the postgres user when we are root (PostgreSQL refuses to run as root)."""

    def __init__(self, directory: Path, certs: Certs, ssl_on=True, hba=None, extra_conf=""):
        self.dir = directory
        self.port = free_port()
        self.data = directory / "data"
        self.socket_dir = directory / "run"
        self.log = directory / "postgres.log"
        self.certs = certs
        directory.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.user = "postgres" if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
        tls_dir = directory / "tls"
        tls_dir.mkdir(exist_ok=True)
        for src in (certs.server_crt, certs.server_key, certs.ca_crt):
            shutil.copy(src, tls_dir / src.name)
        os.chmod(tls_dir / certs.server_key.name, 0o600)
        if IS_ROOT:
            run(["chown", "-R", "postgres:", str(directory)], check=True)
        r = self._as_pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                         "-E", "UTF8", "--locale=C"])
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        conf = f"""
listen_addresses = '127.0.0.1,127.0.0.2'
port = {self.port}
unix_socket_directories = '{self.socket_dir}'
max_connections = 300
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %u@%d '
"""
        if ssl_on:
            conf += f"""
ssl = on
ssl_cert_file = '{tls_dir / certs.server_crt.name}'
ssl_key_file = '{tls_dir / certs.server_key.name}'
ssl_ca_file = '{tls_dir / certs.ca_crt.name}'
"""
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf + extra_conf)
        if hba is None:
            kind = "hostssl" if ssl_on else "host"
            hba = ["local all all trust",
                   f"{kind} all md5user 127.0.0.1/32 md5",
                   f"{kind} all pwuser 127.0.0.1/32 password",
                   f"{kind} all all 127.0.0.1/32 scram-sha-256"]
        (self.data / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        if IS_ROOT:
            run(["chown", "-R", "postgres:", str(directory)], check=True)
        self.start()

    def _as_pg(self, cmd, **kw):
        if IS_ROOT:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return run(cmd, **kw)

    def start(self):
        r = self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"])
        if r.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {r.stderr}\n{self.log.read_text() if self.log.exists() else ''}")

    def stop(self, mode="fast"):
        self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def restart(self):
        # -l: without it the new postmaster inherits (and holds open) the pipe this process reads pg_ctl from.
        r = self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t",
                         "60", "restart"])
        if r.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not restart: {r.stderr}")

    def sql(self, query, db="postgres", check=True):
        """Runs SQL as the superuser over the Unix socket; returns stdout (unaligned, tuples only)."""
        r = run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir), "-p", str(self.port),
                 "-U", "postgres", "-d", db, "-c", query])
        if check and r.returncode != 0:
            raise RuntimeError(f"SQL failed: {query}\n{r.stderr}")
        return r.stdout.strip()

    def pgbench_database(self, name, owner="alice"):
        """A fresh database `name` owned by `owner`, initialised by `pgbench -i` at scale 1."""
        self.sql(f"DROP DATABASE IF EXISTS {name}")
        self.sql(f"CREATE DATABASE {name} OWNER {owner}")
        r = run(["pgbench", "-i", "-q", "-s", "1", "-h", str(self.socket_dir), "-p", str(self.port), "-U", owner,
                 name])
        assert r.returncode == 0, r.stderr
        return name

    def scram_secret(self, role):
        return self.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")


# ---------------------------------------------------------------------------------------------------------------
# pgwarden


class Pgwarden:
    """A pgwarden process with a generated TOML config; stopped by PID."""

    def __init__(self, directory: Path, config: str, port=None, extra_listen=(), wait=True, own_session=False):
        self.dir = directory
        # Benchmarks start pgwarden in a session of its own, as a daemon or a service runs: with the kernel's
        # autogroup scheduling, a process left in the benchmark's session shares one CPU share with pgbench.
        self.own_session = own_session
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config_path = directory / "pgwarden.toml"
        listen = [f"127.0.0.1:{self.port}", *extra_listen]
        listen_toml = ", ".join(f'"{l}"' for l in listen)
        self.config_path.write_text(f"[proxy]\nlisten = [{listen_toml}]\n" + config)
        self.log_path = directory / "pgwarden.log"
        self.proc = None
        self.start(wait)

    def start(self, wait=True):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(PGWARDEN), "--config", str(self.config_path)], stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=self.own_session)
        if wait:
            wait_for_port(self.port, proc=self.proc)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log_file.close()
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def conninfo(self, user="alice", dbname="app", sslmode="verify-full", host="localhost", **extra):
        parts = [f"host={host}", f"port={self.port}", f"dbname={dbname}", f"user={user}", f"sslmode={sslmode}"]
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)


def psql(conninfo, sql, password=None, timeout=60, extra_args=(), env=None, input=None):
    e = dict(os.environ)
    e.pop("PGPASSWORD", None)
    if password is not None:
        e["PGPASSWORD"] = password
    e["PGCONNECT_TIMEOUT"] = "10"
    if env:
        e.update(env)
    args = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *extra_args, conninfo]
    if sql is not None:
        args += ["-c", sql]
    return run(args, env=e, timeout=timeout, input=input)


# ---------------------------------------------------------------------------------------------------------------
# Raw protocol (for checks on the wire that libpq hides)


def startup_packet(params, major=3, minor=0):
    body = struct.pack("!I", (major << 16) | minor)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)


def cancel_request(pid, key):
    return struct.pack("!IIii", 16, 80877102, pid, key)


def message(type_byte, body=b""):
    return type_byte + struct.pack("!I", len(body) + 4) + body


def cstring(s):
    return s.encode() + b"\0"


# Frontend messages for tests that speak the protocol themselves (text parameters, no parameter types).
def parse_message(name, sql):
    return message(b"P", cstring(name) + cstring(sql) + struct.pack("!h", 0))


def bind_message(portal="", statement=""):
    return message(b"B", cstring(portal) + cstring(statement) + struct.pack("!hhh", 0, 0, 0))


def execute_message(portal="", rows=0):
    return message(b"E", cstring(portal) + struct.pack("!i", rows))


def query_message(sql):
    return message(b"Q", cstring(sql))


def close_message(target, name):
    return message(b"C", target.encode() + cstring(name))


SYNC_MESSAGE = message(b"S")
FLUSH_MESSAGE = message(b"H")


class Wire:
    """A blocking socket (optionally TLS) that reads whole typed messages."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=source)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed with {len(self.buf)} of {n} bytes")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self):
        header = self.recv_exact(5)
        length = struct.unpack("!I", header[1:])[0]
        return header[:1], self.recv_exact(length - 4)

    def until_ready(self, timeout=10.0):
        """Messages up to and including ReadyForQuery, as (type, body); a timeout raises."""
        self.sock.settimeout(timeout)
        out = []
        while not out or out[-1][0] != b"Z":
            out.append(self.read_message())
        return out

    def start_tls(self, cafile=None, alpn=None, certfile=None, keyfile=None, server_hostname="localhost",
                  context=None):
        ctx = context or ssl.create_default_context(cafile=cafile)
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tls_startup(port, cafile, params):
    """A Wire that asked for TLS, verified pgwarden's certificate and sent a startup packet."""
    w = Wire(port)
    w.send(SSL_REQUEST)
    assert w.recv_exact(1) == b"S"
    w.start_tls(cafile=str(cafile))
    w.send(startup_packet(params))
    return w


def tls_login(port, cafile, user, password, database):
    """A Wire over TLS, logged in by SCRAM and at its first ReadyForQuery."""
    w = tls_startup(port, cafile, {"user": user, "database": database})
    msgs = scram_login(w, user, password)
    assert msgs[-1][0] == b"Z", msgs
    return w


def error_fields(body):
    """ErrorResponse / NoticeResponse body -> {code: value}."""
    fields = {}
    for part in body.rstrip(b"\0").split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode()
    return fields


def scram_login(wire, user, password):
    """Answers AuthenticationSASL with SCRAM-SHA-256 (no channel binding); returns messages up to ReadyForQuery."""
    t, body = wire.read_message()
    assert t == b"R" and struct.unpack("!I", body[:4])[0] == 10, (t, body)
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n=,r={nonce}"
    data = ("n,," + first_bare).encode()
    wire.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(data)) + data))
    t, body = wire.read_message()
    if t == b"E":
        return [(t, body)]
    assert t == b"R" and struct.unpack("!I", body[:4])[0] == 11, (t, body)
    server_first = body[4:].decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    wire.send(message(b"p", f"{without_proof},p={base64.b64encode(proof).decode()}".encode()))
    out = []
    while True:
        t, body = wire.read_message()
        out.append((t, body))
        if t in (b"Z", b"E"):
            return out


def new_tempdir(prefix="pgw-test-"):
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


def remove_tempdir(d):
    """What new_tempdir made, once its processes are stopped (kept with PGW_KEEP_TEST_DIR=1, to look into)."""
    if os.environ.get("PGW_KEEP_TEST_DIR") != "1":
        shutil.rmtree(d, ignore_errors=True)
