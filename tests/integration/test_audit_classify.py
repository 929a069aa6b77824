"""The audit classifier's corpus (tests/data/audit_statements.tsv) against what PostgreSQL 15 itself logs.

A cluster runs with log_statement = 'mod' and log_destination = 'jsonlog'; every corpus row is sent as one simple
Query in order on one session (application_name = the row's line, so each log record names its row). Then:
- every row PostgreSQL logged holds a statement we class mod or ddl by PostgreSQL's own rules (superset "none");
- every statement we class mod/ddl in a row PostgreSQL did not log is in our documented superset (SUPERSET below,
  the Superset enum in audit/include/pgw/audit/classify.hpp), or is text the grammar rejects;
- a statement we mark as superset is one PostgreSQL does not log (single-statement rows), so the list is exact.
"""
import json
import os
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest

import harness

CORPUS = harness.ROOT / "tests" / "data" / "audit_statements.tsv"
# Next to the pgwarden under test (build/ or, with scripts/test --asan, build-asan/).
CLASSIFY = Path(os.environ.get("PGW_CLASSIFY_BIN", harness.PGWARDEN.parent.parent / "tests" / "pgw_classify"))

# Where pgwarden records more than log_statement = 'mod' does (SPEC "Audit record"), by Superset name.
SUPERSET = {
    "modifying_with": "SELECT (or EXPLAIN ANALYZE / PREPARE / COPY ... TO of one) whose WITH writes",
    "copy_dml_to": "COPY (INSERT|UPDATE|DELETE ... RETURNING) TO",
    "select_into_setop": "SELECT ... INTO on the leftmost arm of UNION/INTERSECT/EXCEPT",
    "unknown_execute": "EXECUTE of a name with no completed PREPARE in this session",
    "not_parsed": "not parsed: class from the leading keyword",
}

SETUP = """
CREATE TABLE obs (id int PRIMARY KEY, v text, created timestamptz DEFAULT now());
CREATE TABLE accounts (id int PRIMARY KEY, balance int, owner text);
CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
CREATE TABLE app_patient (id serial PRIMARY KEY, first_name text, last_name text, email text, phone text,
  birth_date date, mrn text, address_line1 text, address_line2 text, city text, state text, postal_code text,
  country text, insurance_id text, primary_physician_id int, allergies text, notes text, created_at timestamptz,
  updated_at timestamptz, is_active bool, gender text, blood_type text, height_cm int, weight_kg numeric,
  emergency_contact text, emergency_phone text, language text, ethnicity text, marital_status text);
CREATE TABLE "MixedCase" (a int);
CREATE SCHEMA app2;
CREATE TABLE app2.items (id serial, name text);
CREATE TABLE audit_src (id int, v text);
CREATE TABLE logs (id serial, msg text);
CREATE TABLE logs2 (id serial);
CREATE TABLE v_rule (a int);
"""


def load_rows():
    rows = {}
    for n, line in enumerate(CORPUS.read_text().split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        classes, commands, objects, sql = line.split("\t")
        rows[n] = {"classes": classes.split(","), "escaped": sql}
    return rows


def classify_corpus():
    if not CLASSIFY.exists():
        pytest.fail(f"{CLASSIFY} not built (scripts/test builds it; or set PGW_CLASSIFY_BIN)")
    r = subprocess.run([str(CLASSIFY)], input=CORPUS.read_text(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {obj["line"]: obj for obj in map(json.loads, r.stdout.splitlines())}


@pytest.fixture(scope="module")
def logging_cluster(tmp_path_factory, certs):
    d = harness.new_tempdir("pgw-classify-")
    conf = harness.STATEMENT_LOG_CONF + "max_prepared_transactions = 0\n"
    pg = harness.PostgresCluster(d / "pg", certs, ssl_on=False, hba=["local all all trust"], extra_conf=conf)
    yield pg
    pg.stop("immediate")
    harness.remove_tempdir(d)


def connect(pg):
    conn = psycopg2.connect(host=str(pg.socket_dir), port=pg.port, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def run_corpus(pg, rows):
    setup = connect(pg)
    with setup.cursor() as cur:
        cur.execute("SET log_statement = 'none'")
        cur.execute(SETUP)
    setup.close()

    conn = connect(pg)
    for line, row in rows.items():
        sql = row["sql"]
        if conn.closed:
            conn = connect(pg)
        with conn.cursor() as cur:
            cur.execute("SET application_name = %s", (f"row_{line}",))
            try:
                cur.execute(sql)  # no parameters: psycopg2 sends the text as it is, in one simple Query
            except (psycopg2.Error, psycopg2.Warning):
                pass  # log_statement logs before execution; failures do not matter here
        if not conn.closed and conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SET application_name = 'end_marker'")
        cur.execute("CREATE TABLE pgw_classify_end_marker ()")
    conn.close()


def read_log(pg):
    """The jsonlog records, once the logging collector has written the end marker (it writes asynchronously)."""
    deadline = time.monotonic() + 60
    while True:
        records = []
        for f in sorted((pg.data / "log").glob("*.json")):
            for text in f.read_text(errors="replace").splitlines():
                if text.strip():
                    records.append(json.loads(text))
        if any(r.get("application_name") == "end_marker" for r in records):
            return records
        assert time.monotonic() < deadline, "the end marker never reached the jsonlog"
        time.sleep(0.05)


def test_classifier_matches_postgres_log_statement(logging_cluster):
    rows = load_rows()
    ours = classify_corpus()
    assert set(ours) == set(rows)
    for line, row in rows.items():
        row["sql"] = ours[line]["sql"]
        # The tool classifies with the same code the unit test checks against the table's expectations.
        assert [s["class"] for s in ours[line]["statements"]] == row["classes"], (line, ours[line])

    run_corpus(logging_cluster, rows)
    records = read_log(logging_cluster)
    logged = {}
    for r in records:
        app, msg = r.get("application_name", ""), r.get("message", "")
        if app.startswith("row_") and msg.startswith("statement: "):
            logged[int(app[4:])] = msg[len("statement: "):]

    problems = []
    surprising = []
    for line, row in rows.items():
        stmts = ours[line]["statements"]
        pg_logged = line in logged
        if pg_logged:
            assert logged[line] == row["sql"], line
            if not any(s["class"] in ("mod", "ddl") and s["superset"] == "none" for s in stmts):
                problems.append(f"line {line}: PostgreSQL logged it, we do not class it mod/ddl: {row['sql']!r} "
                                f"-> {stmts}")
        else:
            for s in stmts:
                if s["class"] not in ("mod", "ddl"):
                    continue
                if s["superset"] in SUPERSET or not ours[line]["parses"]:
                    continue
                problems.append(f"line {line}: we class {s['text']!r} {s['class']}, PostgreSQL did not log it and "
                                f"it is not in the documented superset")
        if len(stmts) == 1 and stmts[0]["superset"] != "none" and ours[line]["parses"]:
            if pg_logged:
                surprising.append(f"line {line}: marked {stmts[0]['superset']} but PostgreSQL logs it: {row['sql']!r}")
    print(f"{len(rows)} rows, PostgreSQL logged {len(logged)}")
    for line, row in rows.items():
        reasons = sorted({s["superset"] for s in ours[line]["statements"] if s["superset"] != "none"})
        if reasons and line not in logged:
            print(f"superset (not logged by PostgreSQL): line {line} {reasons}: {row['sql'][:100]!r}")
    assert not problems, "\n".join(problems)
    assert not surprising, "\n".join(surprising)
