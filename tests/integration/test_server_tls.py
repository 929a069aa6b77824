"""pgwarden -> PostgreSQL: libpq's six sslmode values, mutual TLS, SNI, and servers that misbehave before TLS."""
import socket
import ssl
import struct
import threading

import pytest

import harness
from harness import psql


def connect_through(env, pgw, user="alice", password="alice-pw"):
    return psql(env.via(pgw, user=user), "SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = "
                "pg_backend_pid())", password=password)


@pytest.mark.parametrize("mode,expect_ok", [
    ("disable", False),     # the cluster accepts hostssl only
    ("allow", True),        # plaintext first, refused by pg_hba, then TLS
    ("prefer", True),
    ("require", True),
    ("verify-ca", True),
    ("verify-full", True),
])
def test_sslmodes_against_tls_only_server(env, mode, expect_ok):
    server_tls = {"mode": mode}
    if mode.startswith("verify"):
        server_tls["ca"] = str(env.certs.ca_crt)
    pgw = env.start(server_tls=server_tls)
    r = connect_through(env, pgw)
    if expect_ok:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "alice|t"
    else:
        assert r.returncode != 0
        assert "could not log in to the server" in r.stderr


@pytest.mark.parametrize("mode,expect_ok", [
    ("disable", True),
    ("allow", True),
    ("prefer", True),        # the server says 'N': plaintext
    ("require", False),      # TLS or nothing
    ("verify-ca", False),
    ("verify-full", False),
])
def test_sslmodes_against_plaintext_server(env, plain_cluster, mode, expect_ok):
    server_tls = {"mode": mode}
    if mode.startswith("verify"):
        server_tls["ca"] = str(env.certs.ca_crt)
    pgw = env.start(server_tls=server_tls,
                    database=[{"name": "app", "host": "localhost", "port": plain_cluster.port}])
    r = psql(env.via(pgw), "SELECT current_user", password="alice-pw")
    if expect_ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0
        assert "does not accept TLS" in r.stderr


def test_require_with_a_ca_verifies_the_chain_like_libpq(env):
    ok = env.start("ok", server_tls={"mode": "require"})
    assert connect_through(env, ok).returncode == 0
    wrong_ca = env.start("wrong", server_tls={"mode": "require", "ca": str(env.certs.other_ca_crt)})
    r = connect_through(env, wrong_ca)
    assert r.returncode != 0 and "certificate verify failed" in r.stderr


def test_verify_ca_ignores_the_name_verify_full_checks_it(env):
    db = [{"name": "app", "host": "127.0.0.2", "port": env.cluster.port}]  # not in the certificate
    ca = env.start("ca", server_tls={"mode": "verify-ca", "ca": str(env.certs.ca_crt)}, database=db)
    # pg_hba allows 127.0.0.1 only, and the connection comes from 127.0.0.1 even when it goes to 127.0.0.2.
    assert connect_through(env, ca).returncode == 0
    full = env.start("full", server_tls={"mode": "verify-full", "ca": str(env.certs.ca_crt)}, database=db)
    r = connect_through(env, full)
    assert r.returncode != 0 and "certificate verify failed" in r.stderr


def test_verify_full_accepts_ip_in_san(env):
    pgw = env.start(database=[{"name": "app", "host": "127.0.0.1", "port": env.cluster.port}])
    assert connect_through(env, pgw).returncode == 0


def test_mutual_tls_to_the_server(env):
    """PostgreSQL's cert method: pgwarden presents server_tls.cert, whose CN names the role."""
    pgw = env.start(server_tls={"mode": "verify-full", "ca": str(env.certs.ca_crt), "cert": str(env.certs.certuser_crt),
                                "key": str(env.certs.certuser_key)})
    r = psql(env.via(pgw, user="certuser"), "SELECT current_user", password="cert-client-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "certuser"
    plain = env.start("nocert")
    r = psql(env.via(plain, user="certuser"), "SELECT current_user", password="cert-client-pw")
    assert r.returncode != 0


class FakeServer:
    """Answers pgwarden's SSLRequest the way a hostile or broken server might, and records what it saw."""

    def __init__(self, certs, behaviour):
        self.certs = certs
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.sni = []
        self.received_after_tls = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(30)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            try:
                self.handle(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def handle(self, conn):
        req = conn.recv(8)
        if req != harness.SSL_REQUEST:
            return
        if self.behaviour == "error":
            # CVE-2024-10977: an ErrorResponse to SSLRequest must never reach the client as the server's words.
            body = b"SFATAL\0C28000\0MEVIL-SERVER-TEXT\0\0"
            conn.sendall(b"E" + struct.pack("!I", len(body) + 4) + body)
            return
        if self.behaviour == "injected":
            # CVE-2021-23222: bytes after 'S' and before the handshake must never be acted on.
            conn.sendall(b"S" + b"R\0\0\0\x08\0\0\0\0")
        else:
            conn.sendall(b"S")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certs.server_crt), str(self.certs.server_key))
        ctx.sni_callback = lambda s, name, c: self.sni.append(name)
        tls = ctx.wrap_socket(conn, server_side=True)
        data = tls.recv(4096)
        self.received_after_tls.append(data)
        tls.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("behaviour", ["error", "injected"])
def test_misbehaving_server_before_tls(env, behaviour):
    fake = FakeServer(env.certs, behaviour)
    try:
        pgw = env.start(database=[{"name": "app", "host": "localhost", "port": fake.port}])
        r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
        assert r.returncode != 0
        assert "EVIL-SERVER-TEXT" not in r.stderr
        assert "could not log in to the server" in r.stderr
        assert "EVIL-SERVER-TEXT" not in pgw.log()
        if behaviour == "injected":
            # The injected 'AuthenticationOk' was not taken as a login: pgwarden's TLS handshake saw it as garbage.
            assert not fake.received_after_tls or not fake.received_after_tls[0].startswith(b"p")
        env.assert_serves(env.start("good"))
    finally:
        fake.close()


def test_sni_sent_for_host_names_not_for_ips(env):
    fake = FakeServer(env.certs, "normal")
    try:
        by_name = env.start("name", database=[{"name": "app", "host": "localhost", "port": fake.port}])
        psql(env.via(by_name), "SELECT 1", password="alice-pw")
        by_ip = env.start("ip", database=[{"name": "app", "host": "127.0.0.1", "port": fake.port}])
        psql(env.via(by_ip), "SELECT 1", password="alice-pw")
        assert fake.sni == ["localhost", None]
        # Both got as far as sending a StartupMessage over TLS.
        assert len(fake.received_after_tls) == 2
        assert all(b"user\0alice\0" in d for d in fake.received_after_tls)
    finally:
        fake.close()
