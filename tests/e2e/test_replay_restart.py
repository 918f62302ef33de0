"""Issue 14 item 3: a signed request seen before a restart is refused after it.

A captured v1 DisableKey and a captured V3 (ACS3-HMAC-SHA256) ScheduleKeyDeletion, both
hand-signed (RawClient), are sent once, undone by the owner, then replayed after a graceful
restart and after a SIGKILL: the replay is `SignatureNonceUsed` and the keys keep their state.
On SQLite the nonces outlive the process in the nonce journal (<data dir>/nonces); on
PostgreSQL (KMS_TEST_DATABASE_URL) in the database's nonce claims. Everything happens well
within the 15-minute window of the captured requests.
"""
import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from kms_helpers import KmsServer, RawClient, assert_error_shape, fill_fs, mount_tmpfs, umount

NONCE_USED = "SignatureNonceUsed"


@contextlib.contextmanager
def journal_on_a_small_tmpfs(srv):
    """The nonce journal of `srv` (not started yet) on a 1 MiB tmpfs mounted on
    <data dir>/nonces, which the test can fill; skips on PostgreSQL (no journal) and where no
    tmpfs can be mounted. Afterwards the server is killed if still running and the tmpfs
    unmounted."""
    if srv.database_url:
        pytest.skip("on PostgreSQL the nonces are claimed in the database")
    nonces = srv.data_dir / "nonces"
    why = mount_tmpfs(nonces, "1m")
    if why:
        pytest.skip(why)
    try:
        yield nonces
    finally:
        if srv.proc is not None:
            srv.kill9()
        umount(nonces)


def restart(server, how: str) -> None:
    if how == "graceful":
        server.restart()
    else:
        server.kill9_and_restart()


def state_of(raw: RawClient, key: str) -> str:
    return raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"]


def assert_replay_refused(r) -> None:
    assert r.status == 400, r
    assert_error_shape(r.json, NONCE_USED)


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
def test_captured_requests_are_refused_after_a_restart(own_server, how):
    raw = RawClient(own_server)
    k1 = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    k3 = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]

    # The captured requests, answered once.
    disable = raw.call("DisableKey", {"KeyId": k1})
    assert disable.status == 200, disable
    schedule_query = {"KeyId": k3, "PendingWindowInDays": "7"}
    schedule = raw.call_v3("ScheduleKeyDeletion", schedule_query)
    assert schedule.status == 200, schedule
    assert state_of(raw, k3) == "PendingDeletion"
    # The owner undoes both.
    raw.ok("EnableKey", {"KeyId": k1})
    raw.ok("CancelKeyDeletion", {"KeyId": k3})

    def replays():
        return [raw.call(None, signed_params=disable.sent_params),
                raw.call_v3("ScheduleKeyDeletion", schedule_query, replay_headers=schedule.sent_headers)]

    for r in replays():
        assert_replay_refused(r)
    restart(own_server, how)
    for r in replays():
        assert_replay_refused(r)
    assert state_of(raw, k1) == "Enabled"
    assert state_of(raw, k3) == "Enabled"
    # And again after a second restart of the other kind (the journal is read and kept).
    restart(own_server, "sigkill" if how == "graceful" else "graceful")
    for r in replays():
        assert_replay_refused(r)
    assert state_of(raw, k1) == "Enabled"
    assert state_of(raw, k3) == "Enabled"


def test_every_answered_request_is_refused_after_a_sigkill(own_server):
    """A burst from many connections, SIGKILL right after the last answer: every request that
    was answered is remembered (its nonce reached the kernel before it was served)."""
    raw = RawClient(own_server)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]

    def one(i):
        action = "DescribeKey" if i % 2 else "Encrypt"
        params = {"KeyId": key} if i % 2 else {"KeyId": key, "Plaintext": "aGVsbG8="}
        if i % 3 == 0:
            r = raw.call_v3(action, params)
            assert r.status == 200, r
            return ("v3", action, params, r.sent_headers)
        r = raw.call(action, params)
        assert r.status == 200, r
        return ("v1", action, params, r.sent_params)

    with ThreadPoolExecutor(16) as ex:
        sent = list(ex.map(one, range(300)))
    own_server.kill9_and_restart()

    def replay(item):
        kind, action, params, signed = item
        if kind == "v3":
            return raw.call_v3(action, params, replay_headers=signed)
        return raw.call(None, signed_params=signed)

    with ThreadPoolExecutor(16) as ex:
        answers = list(ex.map(replay, sent))
    codes = {}
    for r in answers:
        code = r.json.get("Code", "OK") if r.status != 200 else "OK"
        codes[code] = codes.get(code, 0) + 1
    assert codes == {NONCE_USED: 300}, codes


def test_nonce_journal_files_are_private(own_server):
    if own_server.database_url:
        pytest.skip("on PostgreSQL the nonces are claimed in the database")
    raw = RawClient(own_server)
    raw.ok("DescribeRegions")
    journal = own_server.data_dir / "nonces"
    assert (journal.stat().st_mode & 0o777) == 0o700
    files = [p for p in journal.iterdir() if p.name.endswith(".nonces")]
    assert files, list(journal.iterdir())
    for f in files:
        assert (f.stat().st_mode & 0o777) == 0o600, f


def test_requests_are_refused_while_the_nonce_journal_cannot_be_written(kms_binary, tmp_path):
    """The journal on a real full filesystem (a small tmpfs mounted on <data dir>/nonces):
    once the space it keeps ahead is used up, signed requests answer 503 and are not served
    (a request the server could not remember could be replayed after a restart); when space
    returns they are served again, and what was answered is still refused after a restart. A
    restart while the disk is full still starts."""
    srv = KmsServer(tmp_path / "data", tmp_path / "logs")
    with journal_on_a_small_tmpfs(srv) as nonces:
        srv.start()
        raw = RawClient(srv)
        key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
        answered = raw.call("DescribeKey", {"KeyId": key})
        assert answered.status == 200, answered
        filler = fill_fs(nonces)

        # The space kept ahead lasts a few thousand requests at most, then every signed
        # request is refused before it is served.
        def one(_):
            r = raw.call("DescribeKey", {"KeyId": key})
            return (r.status, r.json.get("Code", "OK") if r.status != 200 else "OK", r.json.get("Message", ""))

        with ThreadPoolExecutor(8) as ex:
            answers = list(ex.map(one, range(12000)))
        refused = [a for a in answers if a[0] != 200]
        assert refused, "the journal's reserve never ran out"
        assert {(s, c) for s, c, _ in refused} == {(503, "ServiceUnavailableTemporary")}, set(refused[:3])
        assert "nonce" in refused[0][2]
        r = raw.call("DisableKey", {"KeyId": key})
        assert (r.status, r.json["Code"]) == (503, "ServiceUnavailableTemporary"), r
        r = raw.call("Encrypt", {"KeyId": key, "Plaintext": "aGVsbG8="})
        assert (r.status, r.json["Code"]) == (503, "ServiceUnavailableTemporary"), r

        # A restart while the journal's filesystem is still full: the server starts (and
        # still refuses what it cannot remember).
        srv.kill9_and_restart()
        r = raw.call("DescribeKey", {"KeyId": key})
        assert (r.status, r.json["Code"]) == (503, "ServiceUnavailableTemporary"), r

        filler.unlink()
        r = raw.call("DisableKey", {"KeyId": key})
        assert r.status == 200, r
        srv.kill9_and_restart()
        assert_replay_refused(raw.call(None, signed_params=answered.sent_params))
        assert_replay_refused(raw.call(None, signed_params=r.sent_params))
        assert state_of(raw, key) == "Disabled"
        srv.stop()


# Issue 21: big frozen nonce sets keep the tails of their fingerprints in anonymous files in
# <data dir>/nonces. These knobs make the server merge and spill after a few nonces instead
# of thousands, so that a few thousand requests exercise it.
SPILL_ENV = {"KMS_TEST_NONCE_MERGE_MIN": "4", "KMS_TEST_NONCE_SPILL_MIN": "8"}


def tail_files(pid: int, nonces) -> list:
    """The server's open descriptors on spilled tails: anonymous files in the journal's
    directory, which /proc shows as `<dir>/#<inode> (deleted)`."""
    out = []
    fd_dir = f"/proc/{pid}/fd"
    import os
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith(str(nonces) + "/#"):
            out.append(target)
    return out


def send_many(raw, n: int) -> list:
    def one(i):
        return raw.call("DescribeRegions")
    with ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, range(n)))


def test_spilled_nonces_are_refused_after_merges_and_a_sigkill(kms_binary, tmp_path):
    """Thousands of signed requests fill frozen sets that spill their tails to disk; every
    replay of them is refused, before and after a SIGKILL (the sets and their files are
    rebuilt from the journal at start-up)."""
    srv = KmsServer(tmp_path / "data", tmp_path / "logs", extra_env=SPILL_ENV)
    if srv.database_url:
        pytest.skip("on PostgreSQL the nonces are claimed in the database")
    srv.start()
    try:
        raw = RawClient(srv)
        sent = send_many(raw, 4000)
        assert [r.status for r in sent] == [200] * len(sent)
        nonces = srv.data_dir / "nonces"
        files = tail_files(srv.proc.pid, nonces)
        assert len(files) >= 16, files
        for r in sent[::40]:
            assert_replay_refused(raw.call(None, signed_params=r.sent_params))
        srv.kill9_and_restart()
        assert len(tail_files(srv.proc.pid, nonces)) >= 16
        for r in sent[::40]:
            assert_replay_refused(raw.call(None, signed_params=r.sent_params))
        more = send_many(raw, 500)
        assert [r.status for r in more] == [200] * len(more)
        for r in (sent + more)[::25]:
            assert_replay_refused(raw.call(None, signed_params=r.sent_params))
        srv.stop()
    finally:
        if srv.proc is not None:
            srv.kill9()


def test_spilling_on_a_full_disk_keeps_the_sets_in_memory(kms_binary, tmp_path):
    """With the journal's filesystem full (a small tmpfs), tails cannot be written: the sets
    stay whole in memory and every request the journal could still record is served and its
    replay refused; none is served twice."""
    srv = KmsServer(tmp_path / "data", tmp_path / "logs", extra_env=SPILL_ENV)
    with journal_on_a_small_tmpfs(srv) as nonces:
        srv.start()
        raw = RawClient(srv)
        assert raw.call("DescribeRegions").status == 200
        filler = fill_fs(nonces)
        before = len(tail_files(srv.proc.pid, nonces))
        sent = send_many(raw, 3000)
        served = [r for r in sent if r.status == 200]
        refused = [r for r in sent if r.status != 200]
        assert len(served) > 500, len(served)
        assert {(r.status, r.json["Code"]) for r in refused} <= {(503, "ServiceUnavailableTemporary")}
        # No new tail could be written: at most those made before the disk filled remain.
        assert len(tail_files(srv.proc.pid, nonces)) <= before
        for r in served[::10]:
            assert_replay_refused(raw.call(None, signed_params=r.sent_params))
        filler.unlink()
        more = send_many(raw, 2000)
        assert [r.status for r in more] == [200] * len(more)
        assert len(tail_files(srv.proc.pid, nonces)) > before, "spilling resumes with space"
        for r in (served + more)[::10]:
            assert_replay_refused(raw.call(None, signed_params=r.sent_params))
        srv.stop()
