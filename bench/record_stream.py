#!/usr/bin/env python3
"""Records the two byte streams of a pgbench run (client->server and server->client) for the codec benchmark.

    bench/record_stream.py  ->  bench/data/pgbench_{simple,extended}_{frontend,backend}.bin

Starts a throwaway plaintext PostgreSQL 15, relays pgbench through a local TCP relay that writes every byte it
forwards, and keeps only the part after the login (the steady-state traffic the framer sees).
"""
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import harness  # noqa: E402

OUT = Path(__file__).resolve().parent / "data"


def relay(listen_port, target_port, front, back, stop):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(4)
    srv.settimeout(0.5)
    while not stop.is_set():
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        s = socket.create_connection(("127.0.0.1", target_port))
        # pgbench opens more than one connection; keep the last (the one that runs the transactions).
        front.clear()
        back.clear()

        def pump(a, b, sink):
            while True:
                try:
                    data = a.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    b.close()
                    return
                sink.extend(data)
                b.sendall(data)

        t1 = threading.Thread(target=pump, args=(c, s, front), daemon=True)
        t2 = threading.Thread(target=pump, args=(s, c, back), daemon=True)
        t1.start()
        t2.start()
        t1.join()
        t2.join()
    srv.close()


def main():
    work = harness.new_tempdir("pgw-record-")
    certs = harness.Certs(work / "certs")
    pg = harness.PostgresCluster(work / "pg", certs, ssl_on=False,
                                 hba=["local all all trust", "host all all 127.0.0.1/32 trust"])
    try:
        pg.sql("CREATE DATABASE bench")
        harness.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                     "bench"], check=True)
        OUT.mkdir(exist_ok=True)
        for mode in ("simple", "extended"):
            front, back, stop = bytearray(), bytearray(), threading.Event()
            port = harness.free_port()
            t = threading.Thread(target=relay, args=(port, pg.port, front, back, stop), daemon=True)
            t.start()
            harness.wait_for_port(port)
            harness.run(["pgbench", "-n", "-S", "-M", mode, "-c", "1", "-t", "2000", "-h", "127.0.0.1", "-p",
                         str(port), "-U", "postgres", "bench"], check=True, env={**os.environ, "PGSSLMODE": "disable"})
            stop.set()
            t.join(5)
            # Drop the login: everything up to the first ReadyForQuery from the server, and the startup packet.
            z = back.find(b"Z\0\0\0\x05I") + 6
            start_len = int.from_bytes(front[:4], "big")
            (OUT / f"pgbench_{mode}_backend.bin").write_bytes(bytes(back[z:]))
            (OUT / f"pgbench_{mode}_frontend.bin").write_bytes(bytes(front[start_len:]))
            print(f"{mode}: frontend {len(front) - start_len} bytes, backend {len(back) - z} bytes")
    finally:
        pg.stop("immediate")
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent)
    main()
