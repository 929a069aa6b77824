"""`pgwarden audit verify` on logs written by AuditLog (tests/tools/pgw_audit_write): exit codes and the record named."""
import os
from pathlib import Path

import pytest

import harness

AUDIT_WRITE = Path(os.environ.get("PGW_AUDIT_WRITE_BIN", harness.PGWARDEN.parent.parent / "tests" / "pgw_audit_write"))


def write_log(directory, count, *extra, capture=None):
    """Appends `count` records to directory/audit.jsonl; returns the stdout sink's text when asked."""
    cmd = [str(AUDIT_WRITE), "--path", str(directory / "audit.jsonl"), "--count", str(count), *extra]
    r = harness.run(cmd, timeout=60)
    assert r.returncode == 0, r.stderr
    if capture is not None:
        capture.write_text(r.stdout)
    return r


def verify(*args):
    return harness.run([str(harness.PGWARDEN), "audit", "verify", *map(str, args)], timeout=60)


def log_files(directory):
    return sorted(directory.glob("audit.jsonl*"))


@pytest.fixture(autouse=True)
def _tool_built():
    if not AUDIT_WRITE.exists():
        pytest.fail(f"{AUDIT_WRITE} is not built (cmake --build ... --target pgw_audit_write)")


def test_intact_rotated_log_verifies_with_counts(tmp_path):
    write_log(tmp_path, 300, "--rotate-size", "20000", "--rotate-keep", "100", "--threads", "4")
    files = log_files(tmp_path)
    assert len(files) > 3
    r = verify(*reversed(files))
    assert r.returncode == 0, r.stderr
    assert 'instance "test-instance": 300 records, seq 1..300' in r.stdout
    assert "SHA-256 chains verified: 1" in r.stdout


def test_restart_continues_the_chain(tmp_path):
    write_log(tmp_path, 20)
    write_log(tmp_path, 30, "--fsync", "every")
    r = verify(tmp_path / "audit.jsonl")
    assert r.returncode == 0, r.stderr
    assert "50 records, seq 1..50" in r.stdout


def test_changed_byte_names_file_line_and_seq(tmp_path):
    write_log(tmp_path, 20)
    log = tmp_path / "audit.jsonl"
    data = bytearray(log.read_bytes())
    lines = data.split(b"\n")
    at = sum(len(l) + 1 for l in lines[:11]) + lines[11].index(b"VALUES (") + 8
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    log.write_bytes(bytes(data))
    r = verify(log)
    assert r.returncode == 1
    assert f"first broken record: {log}:12: seq 12: hash does not match" in r.stderr


def test_deleted_and_swapped_lines_are_named(tmp_path):
    write_log(tmp_path, 20)
    log = tmp_path / "audit.jsonl"
    original = log.read_text().splitlines(keepends=True)
    log.write_text("".join(original[:5] + original[6:]))
    r = verify(log)
    assert r.returncode == 1
    assert f"{log}:6: seq 6: expected seq 6, found 7" in r.stderr
    swapped = list(original)
    swapped[8], swapped[9] = swapped[9], swapped[8]
    log.write_text("".join(swapped))
    r = verify(log)
    assert r.returncode == 1
    assert f"{log}:9: seq 9: expected seq 9, found 10" in r.stderr


def test_hmac_chain_needs_the_key(tmp_path):
    key = tmp_path / "hmac.key"
    key.write_text("a-long-random-key-for-the-audit-chain\n")
    write_log(tmp_path, 10, "--hmac-key-file", str(key))
    log = tmp_path / "audit.jsonl"
    r = verify("--hmac-key-file", key, log)
    assert r.returncode == 0, r.stderr
    assert "HMAC-SHA-256 chains verified: 1" in r.stdout
    r = verify(log)
    assert r.returncode == 1
    assert f"{log}:1: seq 1:" in r.stderr and "--hmac-key-file" in r.stderr
    other = tmp_path / "other.key"
    other.write_text("not-the-key")
    assert verify("--hmac-key-file", other, log).returncode == 1
    r = verify("--hmac-key-file", tmp_path / "missing.key", log)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_cut_tail_and_deleted_newest_file_need_checkpoints(tmp_path):
    capture = tmp_path / "stdout.jsonl"
    write_log(tmp_path, 200, "--sinks", "file,stdout", "--rotate-size", "30000", "--rotate-keep", "100",
              "--checkpoint-interval", "1", capture=capture)
    files = log_files(tmp_path)
    assert verify("--checkpoints", capture, *files).returncode == 0
    # Cut the last 3 records off the current file.
    current = tmp_path / "audit.jsonl"
    lines = current.read_text().splitlines(keepends=True)
    current.write_text("".join(lines[:-3]))
    assert verify(*files).returncode == 0  # alone, a cut tail looks like a shorter log
    r = verify("--checkpoints", capture, *files)
    assert r.returncode == 1
    assert f"{current}:{len(lines) - 2}: seq 198: missing: the chain ends at seq 197" in r.stderr
    # The newest file deleted altogether.
    current.unlink()
    rest = log_files(tmp_path)
    r = verify("--checkpoints", capture, *rest)
    assert r.returncode == 1 and "missing: the chain ends at seq" in r.stderr


def test_deleted_middle_rotated_file_is_a_gap(tmp_path):
    write_log(tmp_path, 200, "--rotate-size", "30000", "--rotate-keep", "100")
    (tmp_path / "audit.jsonl.2").unlink()
    r = verify(*log_files(tmp_path))
    assert r.returncode == 1
    assert "are missing between" in r.stderr and "a rotated file was deleted?" in r.stderr
    assert f"{tmp_path / 'audit.jsonl.1'}:1: seq " in r.stderr


def test_rotate_keep_dropping_oldest_files_is_accepted(tmp_path):
    write_log(tmp_path, 200, "--rotate-size", "30000", "--rotate-keep", "2")
    files = log_files(tmp_path)
    assert len(files) == 3
    r = verify(*files)
    assert r.returncode == 0, r.stderr
    assert "(starts after older files were rotated away)" in r.stdout


def test_several_instances_are_separate_chains(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_log(a, 5, "--instance", "pooler-1")
    write_log(b, 7, "--instance", "pooler-2")
    r = verify(a / "audit.jsonl", b / "audit.jsonl")
    assert r.returncode == 0, r.stderr
    assert 'instance "pooler-1": 5 records' in r.stdout
    assert 'instance "pooler-2": 7 records' in r.stdout


def test_usage_errors(tmp_path):
    r = verify()
    assert r.returncode == 2 and "Usage: pgwarden audit verify" in r.stderr
    r = harness.run([str(harness.PGWARDEN), "audit", "check"], timeout=30)
    assert r.returncode == 2
    r = verify(tmp_path / "nope.jsonl")
    assert r.returncode == 1 and "cannot read the file" in r.stderr
