"""The journal's durability: trial ends are fsynced soon, off the kernel's thread, and a failing
fsync breaks the folder as a failing write does; trial logs stay within their bounds."""
import errno
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel import journal
from kernel.journal import ExperimentFolder, read_journal


def test_trial_ends_are_fsynced_on_another_thread_and_close_leaves_nothing_unsynced(tmp_path, monkeypatch):
    real, calls, synced = journal.os.fsync, [], threading.Event()

    def fsync(fd):
        real(fd)
        calls.append(threading.current_thread().name)
        synced.set()

    monkeypatch.setattr(journal.os, "fsync", fsync)
    folder = ExperimentFolder(tmp_path / "exp", sync_every=0.0)
    folder.write("end", True, {"trial": {"id": 0}})
    assert synced.wait(5), "a trial's end was never fsynced"
    assert calls[0] != threading.current_thread().name  # the caller (the kernel's loop) did not wait for it
    folder.write("end", True, {"trial": {"id": 1}})
    folder.close()
    assert calls[-1] == threading.current_thread().name  # the last one before close returns, here
    events, bad = read_journal(tmp_path / "exp")
    assert [e["trial"]["id"] for e in events] == [0, 1] and bad == 0


def test_an_fsync_that_fails_breaks_the_folder_once_and_later_records_are_skipped(tmp_path, monkeypatch):
    failed = threading.Event()

    def fsync(fd):
        failed.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(journal.os, "fsync", fsync)
    told = []
    folder = ExperimentFolder(tmp_path / "exp", sync_every=0.0)
    folder.on_error = told.append
    folder.write("end", True, {"trial": {"id": 0}})
    assert failed.wait(5)
    folder._syncer.stop()  # the thread has recorded the error
    folder.sync()
    assert folder.failed is not None and len(told) == 1
    assert "Input/output error" in folder.describe_failure() and "resume" in folder.describe_failure()
    folder.write("end", True, {"trial": {"id": 1}})  # skipped: the folder is broken
    folder.close()
    assert len(told) == 1
    events, _ = read_journal(tmp_path / "exp")
    assert [e["trial"]["id"] for e in events] == [0]


def test_a_reader_passes_over_the_events_it_skips_however_they_were_written(tmp_path):
    folder = ExperimentFolder(tmp_path / "exp")
    folder.write("lease", False, {"trial": 0, "params": {"x": 1}})
    folder.write("lease", False, {"trial": 1, "params": {"x": 2 ** 80}})  # beyond orjson: written by json, spaced
    folder.write("start", False, {"trial": 0, "params": {"x": 1}})
    folder.write("end", True, {"trial": {"id": 0}})
    folder.close()
    assert [e["event"] for e in journal.iter_journal(tmp_path / "exp", skip=("lease",))] == ["start", "end"]
    assert [e["event"] for e in journal.iter_journal(tmp_path / "exp")] == ["lease", "lease", "start", "end"]


@given(st.lists(st.lists(st.text(alphabet="ab", max_size=12), min_size=1, max_size=8), max_size=30),
       st.integers(0, 60), st.integers(0, 60))
@settings(max_examples=200, deadline=None)
def test_a_capped_log_keeps_a_prefix_and_a_suffix_of_whole_lines_and_says_what_it_cut(tmp_path_factory, messages,
                                                                                       head, tail):
    from kernel.trial_logs import CappedLog

    path = tmp_path_factory.mktemp("log") / "trial.log"
    log = CappedLog(path, head=head, tail=tail)
    for lines in messages:
        log.write("".join(line + "\n" for line in lines))
    log.close()
    full = "".join(line + "\n" for lines in messages for line in lines)
    text = path.read_text()
    if "were cut here" not in text:
        assert text == full
        return
    before, marker, after = text.partition("[lagom: ")
    after = after.split("]\n", 1)[1]
    assert full.startswith(before) and full.endswith(after) and len(before) <= head and len(after) <= tail
    assert before.endswith("\n") or not before
    cut = full[len(before):len(full) - len(after)]
    assert f"{cut.count(chr(10)):,} lines ({len(cut):,} characters)" in text
