// node-postgres clients for test_clients.py: named queries with the same names and each client's own SQL.
'use strict';
const fs = require('fs');
const { Client, Pool } = require('pg');

const SERVER_STATEMENTS = 'SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql';

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function main() {
  const n = Number(process.env.CLIENTS);
  const rounds = Number(process.env.ROUNDS);
  const config = {
    host: 'localhost',
    port: Number(process.env.PGW_PORT),
    database: 'app',
    user: 'alice',
    password: process.env.PGW_PASSWORD,
    // verify-full: the chain against the test CA and the host name (Node's checkServerIdentity).
    ssl: { ca: fs.readFileSync(process.env.PGW_CA), rejectUnauthorized: true },
    connectionTimeoutMillis: 10000,
    query_timeout: 60000,
  };

  // Part 1: n Clients; names 'q' and 'r' mean different SQL in each.
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = new Client(config);
    await c.connect();
    clients.push(c);
  }
  const pids = {};
  for (let i = 0; i < n; i++) pids[i] = new Set();
  for (let round = 0; round < rounds; round++) {
    // All clients run this round together; the next round starts when all are done.
    await Promise.all(clients.map(async (c, i) => {
      const q = {
        name: 'q', text: `SELECT ${i}::int AS client, $1::int AS n, pg_backend_pid() AS pid`, values: [round],
      };
      const r = { name: 'r', text: `SELECT $1::text || '-${i}' AS s`, values: [String(round)] };
      const inTransaction = round % 2 === 0;
      if (inTransaction) await c.query('BEGIN');
      const res = await c.query(q);
      const res2 = await c.query(r);
      if (inTransaction) {
        const st = await c.query(SERVER_STATEMENTS);
        const texts = new Set();
        for (const row of st.rows) {
          check(row.name.startsWith('pgw_'), `a statement known to the server as ${row.name}`);
          texts.add(row.statement);
        }
        check(texts.has(q.text) && texts.has(r.text),
          `client ${i} round ${round}: its statements are not named statements on the server: `
          + JSON.stringify(st.rows));
        await c.query('COMMIT');
      }
      const row = res.rows[0];
      check(row.client === i && row.n === round,
        `client ${i} round ${round} got client ${row.client} n ${row.n}`);
      check(res2.rows[0].s === `${round}-${i}`, `client ${i} round ${round} got ${res2.rows[0].s}`);
      pids[i].add(row.pid);
    }));
  }
  await Promise.all(clients.map((c) => c.end()));

  // Part 2: a pg.Pool of 10 connections, one named query run 400 times at once (each pool connection prepares
  // it once, then only binds it, whichever server connection pgwarden gives it).
  const pool = new Pool({ ...config, max: 10 });
  const poolPids = new Set();
  const add = (k) => ({ name: 'add', text: 'SELECT $1::int + 1 AS v, pg_backend_pid() AS pid', values: [k] });
  await Promise.all(Array.from({ length: 400 }, async (_, k) => {
    const res = await pool.query(add(k));
    check(res.rows[0].v === k + 1, `pool query ${k} got ${res.rows[0].v}`);
    poolPids.add(res.rows[0].pid);
  }));
  // And in transactions taken from the pool.
  await Promise.all(Array.from({ length: 40 }, async (_, k) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const res = await c.query(add(k));
      const again = await c.query(add(k + 1));
      await c.query('COMMIT');
      check(res.rows[0].v === k + 1 && again.rows[0].v === k + 2, `pool transaction ${k} got wrong values`);
      check(res.rows[0].pid === again.rows[0].pid, 'a transaction moved between server connections');
      poolPids.add(res.rows[0].pid);
    } finally {
      c.release();
    }
  }));
  await pool.end();

  const out = { pids: {}, pool_pids: [...poolPids] };
  for (const [i, s] of Object.entries(pids)) out.pids[i] = [...s];
  console.log(JSON.stringify(out));
}

const timer = setTimeout(() => {
  console.error('pool_test.js: time limit reached');
  process.exit(2);
}, 140000);
timer.unref();
main().then(() => process.exit(0), (err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
