"""Live reload under load: pgbench runs while the pool grows and shrinks, the server certificate is replaced on
disk and a broken config is refused; not one transaction fails."""
import os
import re
import shutil
import signal
import ssl
import subprocess
import time

import pytest

import harness
from harness import wait_until


@pytest.fixture(scope="module")
def reload_db(cluster):
    return cluster.pgbench_database("reloadbench")


def server_connections(cluster, db):
    return int(cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' "
                           "AND backend_type = 'client backend'"))


def presented_certificate(port, ca):
    w = harness.Wire(port)
    w.send(harness.SSL_REQUEST)
    assert w.recv_exact(1) == b"S"
    sock = w.start_tls(cafile=str(ca))
    der = sock.getpeercert(binary_form=True)
    w.close()
    return der


def der_of(pem_path):
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def test_pool_sizes_and_certificates_change_under_pgbench_without_a_failed_transaction(env, reload_db, tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(env.certs.server_crt, cert)
    shutil.copy(env.certs.server_key, key)
    pgw = env.start(proxy={"workers": 2},
                    client_tls={"mode": "require", "cert": str(cert), "key": str(key)},
                    pool={"mode": "transaction", "default_size": 5},
                    database=[{"name": reload_db, "host": "localhost", "port": env.cluster.port},
                              {"name": "app", "host": "localhost", "port": env.cluster.port}])
    assert presented_certificate(pgw.port, env.certs.ca_crt) == der_of(env.certs.server_crt)

    def set_pool_size(n):
        text = re.sub(r"default_size = \d+", f"default_size = {n}", pgw.config_path.read_text())
        pgw.config_path.write_text(text)
        pgw.signal(signal.SIGHUP)

    e = dict(os.environ, PGPASSWORD="alice-pw", PGSSLMODE="verify-full", PGSSLROOTCERT=str(env.certs.ca_crt))
    bench = subprocess.Popen(["pgbench", "-n", "-c", "10", "-j", "2", "-T", "14", "-h", "localhost", "-p",
                              str(pgw.port), "-U", "alice", reload_db], env=e, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: server_connections(env.cluster, reload_db) == 5, 10, "the pool of 5 to fill")
        set_pool_size(20)
        wait_until(lambda: server_connections(env.cluster, reload_db) > 5, 10, "the pool to grow past 5")
        set_pool_size(3)
        wait_until(lambda: server_connections(env.cluster, reload_db) <= 3, 10, "the pool to shrink to 3")
        # A renewed certificate written over the old files (as certbot does), then SIGHUP.
        new_crt, new_key = env.certs.issue(
            "renewed", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        shutil.copy(new_crt, cert)
        shutil.copy(new_key, key)
        pgw.signal(signal.SIGHUP)
        wait_until(lambda: presented_certificate(pgw.port, env.certs.ca_crt) == der_of(new_crt), 10,
                   "new handshakes to see the renewed certificate")
        # A broken config is refused whole: the old one keeps serving (pool of 3, renewed certificate).
        good = pgw.config_path.read_text()
        pgw.config_path.write_text(good.replace("default_size = 3", "default_size = -1"))
        pgw.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in pgw.log(), 10, "the broken config to be refused")
        assert "pool.default_size" in pgw.log().split("reload refused", 1)[1]
        time.sleep(1)
        assert server_connections(env.cluster, reload_db) <= 3
        pgw.config_path.write_text(good)
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
    assert bench.returncode == 0, out + err
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed > 100 and (failed is None or int(failed.group(1)) == 0), out
    assert "error" not in err.lower(), err
    env.assert_serves(pgw)


def test_a_reload_that_points_a_database_elsewhere_retires_its_server_connections(env, reload_db):
    """After a failover the operator points the database at the new server and reloads: no client may land on a
    connection to the old one, idle or released later (a client mid-transaction finishes it where it began)."""
    import psycopg
    pgw = env.start(pool={"mode": "transaction", "default_size": 4})

    def current_database(conn):
        return conn.execute("SELECT current_database()").fetchone()[0]

    def backend(conn):
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    busy = psycopg.connect(env.via(pgw), password="alice-pw")  # not autocommit: stays in its transaction
    other = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        assert current_database(busy) == "app"
        assert current_database(other) == "app"  # leaves an idle connection to "app" in the pool
        old_backends = {backend(busy), backend(other)}
        assert len(old_backends) == 2
        text = pgw.config_path.read_text()
        assert f"port = {env.cluster.port}" in text
        pgw.config_path.write_text(text.replace(f"port = {env.cluster.port}",
                                                f"port = {env.cluster.port}\ndbname = \"{reload_db}\"", 1))
        pgw.signal(signal.SIGHUP)
        wait_until(lambda: "new connections use it" in pgw.log(), 10, "the reload")
        assert current_database(other) == reload_db
        fresh = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
        assert current_database(fresh) == reload_db
        fresh.close()
        assert current_database(busy) == "app"  # the transaction goes on where it began
        busy.commit()
        assert current_database(busy) == reload_db
        busy.commit()
        pids = ",".join(str(p) for p in old_backends)
        wait_until(lambda: env.cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({pids})") == "0",
                   10, "the connections to the old database to close")
    finally:
        busy.close()
        other.close()
    env.assert_serves(pgw)
