"""One asyncpg application for test_clients.py: prepared and cached statements with its own SQL, many transactions."""
import asyncio
import json
import os
import ssl
import sys

import asyncpg

SERVER_STATEMENTS = "SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql"


def fail(message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


async def main(client, port, cafile, rounds):
    tls = ssl.create_default_context(cafile=cafile)  # verify-full: chain and host name
    conn = await asyncpg.connect(host="localhost", port=port, user="alice", database="app",
                                 password=os.environ["PGW_PASSWORD"], ssl=tls, timeout=10, command_timeout=60)
    try:
        # Three statements whose names are the same in every process, each meaning this client's own SQL.
        q_text = f"SELECT {client} AS client, $1::int AS n, pg_backend_pid() AS pid"
        a_text = f"SELECT $1::text || '-{client}' AS s"
        c_text = f"SELECT $1::int * 1000 + {client} AS v"  # through asyncpg's statement cache, never prepare()
        q = await conn.prepare(q_text, name="q")
        a = await conn.prepare(a_text)  # __asyncpg_stmt_1__: the first generated name in this process
        names = [q.get_name(), a.get_name()]
        # prepare() is Parse/Describe/Flush: until a Sync or a Query the server holds an implicit transaction
        # (and the locks of what the statements read), so the client keeps its server connection, as behind
        # PgBouncer. A query ends it before this client waits for the others.
        await conn.execute("SELECT 1")
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            fail("no go")
        pids = set()
        for r in range(rounds):
            if r % 2 == 0:
                async with conn.transaction():
                    row = await q.fetchrow(r)
                    s = await a.fetchval(str(r))
                    v = await conn.fetchval(c_text, r)
                    rows = await conn.fetch(SERVER_STATEMENTS)
                texts = {}
                for name, text in rows:
                    if not name.startswith("pgw_"):
                        fail(f"client {client} round {r}: a statement known to the server as {name!r}: {rows}")
                    texts[text] = name
                for text in (q_text, a_text, c_text):
                    if text not in texts:
                        fail(f"client {client} round {r}: {text!r} is not a named statement on the server: {rows}")
            else:
                # Alone: each execution is its own transaction, possibly on another server connection.
                row = await q.fetchrow(r)
                s = await a.fetchval(str(r))
                v = await conn.fetchval(c_text, r)
            got = (row["client"], row["n"], s, v)
            want = (client, r, f"{r}-{client}", r * 1000 + client)
            if got != want:
                fail(f"client {client} round {r}: got {got}, want {want}")
            pids.add(row["pid"])
        print(json.dumps({"client": client, "names": names, "pids": sorted(pids)}), flush=True)
    finally:
        await conn.close(timeout=10)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])), 150))
