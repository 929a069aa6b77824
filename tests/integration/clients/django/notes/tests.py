"""Django tests run through pgwarden in transaction mode: ORM writes, savepoints, threads sharing a small pool."""
import threading
import traceback

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.test import TestCase, TransactionTestCase

from notes.models import Note

POOL_SIZE = 2  # pgwarden's default_size for this run; the threads below outnumber it
THREADS = 6
ROUNDS = 25


def session_value(sql):
    with connection.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


class NoteCrudTests(TestCase):
    """Inside the TestCase's own transaction, as every Django test runs."""

    def test_create_update_delete_with_savepoints(self):
        note = Note.objects.create(owner="alice", slug="first", body="hello")
        note.body = "changed"
        note.save()
        Note.objects.filter(pk=note.pk).update(version=F("version") + 1)
        note.refresh_from_db()
        self.assertEqual((note.body, note.version), ("changed", 1))
        # A failing statement inside a nested atomic block rolls back to its savepoint only.
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                Note.objects.create(owner="alice", slug="first")
        Note.objects.create(owner="alice", slug="second")
        self.assertEqual(Note.objects.filter(owner="alice").count(), 2)
        with transaction.atomic():
            locked = list(Note.objects.select_for_update().filter(owner="alice").order_by("slug"))
            self.assertEqual([n.slug for n in locked], ["first", "second"])
            Note.objects.filter(slug="first").delete()
        self.assertEqual(list(Note.objects.values_list("slug", flat=True)), ["second"])
        fetched = Note.objects.get(slug="second")
        self.assertIsNotNone(fetched.created.tzinfo)

    def test_iterator_uses_no_server_side_cursor(self):
        Note.objects.bulk_create(Note(owner="bulk", slug=f"bulk-{k}", version=k) for k in range(500))
        total, seen = 0, 0
        for note in Note.objects.filter(owner="bulk").order_by("version").iterator(chunk_size=50):
            self.assertEqual(note.version, seen)
            seen += 1
            total += note.version
            if seen == 250:
                # DISABLE_SERVER_SIDE_CURSORS: nothing is DECLAREd, so nothing outlives a transaction.
                self.assertEqual(session_value("SELECT count(*) FROM pg_cursors"), 0)
        self.assertEqual((seen, total), (500, sum(range(500))))


class ConcurrentClientsTests(TransactionTestCase):
    """Several threads, each with its own Django connection, on a pgwarden pool smaller than their number."""

    def run_threads(self, work):
        barrier = threading.Barrier(THREADS, timeout=60)
        results, failures = [None] * THREADS, []

        def body(t):
            try:
                results[t] = work(t, barrier.wait)
            except threading.BrokenBarrierError:
                failures.append((t, None))
            except BaseException:  # noqa: BLE001 - reported with its traceback
                failures.append((t, traceback.format_exc()))
                barrier.abort()
            finally:
                connection.close()

        threads = [threading.Thread(target=body, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        self.assertFalse(any(th.is_alive() for th in threads), "threads still running")
        self.assertEqual(failures, [], "\n".join(tb or f"thread {t}: barrier broken" for t, tb in failures))
        return results

    def test_threads_create_update_delete_with_own_session_state(self):
        def work(t, sync):
            owner = f"thread-{t}"
            # Session state set outside any transaction: Django's own SET TIME ZONE 'UTC' at connect (USE_TZ; the
            # server's default is another name), and this thread's application_name.
            with connection.cursor() as cur:
                cur.execute("SET application_name = %s", [owner])
            pids, kept = set(), 0
            sync()
            for r in range(ROUNDS):
                with transaction.atomic():
                    note = Note.objects.create(owner=owner, slug=f"{owner}-{r}", body=f"round {r}")
                    Note.objects.filter(pk=note.pk).update(version=F("version") + r)
                    mine = list(Note.objects.select_for_update().filter(owner=owner).order_by("id"))
                    self.assertEqual(mine[-1].version, r)
                    self.assertEqual(mine[-1].created, note.created)
                    if r % 3 == 2:
                        Note.objects.filter(pk=note.pk).delete()
                    else:
                        kept += 1
                    self.assertEqual(session_value("SELECT current_setting('application_name') || ' ' || "
                                                   "current_setting('TimeZone')"), f"{owner} UTC", f"round {r}")
                    pids.add(session_value("SELECT pg_backend_pid()"))
                # Outside a transaction block, each statement on its own (autocommit).
                self.assertEqual(Note.objects.filter(owner=owner).count(), kept)
                self.assertEqual(session_value("SHOW application_name"), owner, f"round {r}")
                if r % 5 == 4:
                    # A block that fails leaves nothing behind, for this thread or any other.
                    with self.assertRaises(ZeroDivisionError):
                        with transaction.atomic():
                            Note.objects.create(owner=owner, slug=f"{owner}-doomed-{r}")
                            raise ZeroDivisionError
                sync()
            return owner, kept, pids

        results = self.run_threads(work)
        for owner, kept, _ in results:
            self.assertEqual(Note.objects.filter(owner=owner).count(), kept)
        self.assertFalse(Note.objects.filter(slug__contains="doomed").exists())
        all_pids = set().union(*(pids for _, _, pids in results))
        self.assertLessEqual(len(all_pids), POOL_SIZE, f"threads used {len(all_pids)} server backends")

    def test_iterator_in_autocommit(self):
        Note.objects.bulk_create(Note(owner="it", slug=f"it-{k}", version=k) for k in range(300))

        def work(t, sync):
            sync()
            # Outside any transaction block: with server-side cursors this would need a WITH HOLD cursor that a
            # transaction pooler cannot keep; with DISABLE_SERVER_SIDE_CURSORS the rows are fetched at once.
            versions = [n.version for n in Note.objects.filter(owner="it").order_by("version").iterator(chunk_size=7)]
            sync()
            return versions

        for versions in self.run_threads(work):
            self.assertEqual(versions, list(range(300)))
