"""`kms admin backup` / `kms admin restore` (issue 19): an online backup taken during a write
load restores into a new data dir where every key, version and import token made before it
still works; damaged backups, a non-empty target and a wrong root key are refused with exact
errors; a full disk fails the backup cleanly while the server keeps serving.

With KMS_TEST_DATABASE_URL set the source server runs on PostgreSQL: the backup goes through
the export path and the restore copies on into a fresh PostgreSQL database."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kms_helpers import (ClassicApi, KmsServer, ServerStartError, b64, fill_fs, kms_bin,
                         new_test_database, unb64, wrap_key_material)

CONTENTS = ("The file holds sealed data only: every secret in this file is sealed under the root "
            "key, which is NOT in this file; back the root key up separately.")
WARNING = "WARNING: this backup does not contain the root key."


def admin(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(kms_bin()), "admin", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def backup(srv: KmsServer, to: Path) -> subprocess.CompletedProcess:
    return admin("backup", "--data-dir", str(srv.data_dir), *srv.db_args(), "--to", str(to),
                 env=srv.admin_env())


def restore(src: Path, dst: Path, database_url=None) -> subprocess.CompletedProcess:
    extra = ["--database-url", database_url] if database_url else []
    return admin("restore", "--from", str(src), "--data-dir", str(dst), *extra)


def encrypt(api, key_id: str, pt: bytes) -> str:
    return api.call("Encrypt", KeyId=key_id, Plaintext=b64(pt),
                    EncryptionContext={"b": "1"})["CiphertextBlob"]


def decrypts(api, blob: str, pt: bytes) -> None:
    got = api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"b": "1"})
    assert unb64(got["Plaintext"]) == pt


def imported_key(api) -> str:
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                 WrappingKeySpec="RSA_2048")
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32),
                                                    "RSAES_OAEP_SHA_256"))
    return key_id


def restored_server(src: KmsServer, dst: Path, logs: Path, database_url) -> KmsServer:
    """A server on the restored data dir with the source's root key and access key."""
    shutil.copy(src.data_dir / "root.key", dst / "root.key")
    os.chmod(dst / "root.key", 0o600)
    url = database_url or f"sqlite:{dst / 'kms.db'}"
    return KmsServer(dst, logs, ak=src.ak, sk=src.sk, database_url=url)


@pytest.fixture(scope="module")
def taken(server, tmp_path_factory):
    """Keys of every kind, then a backup taken while two threads create keys and encrypt;
    returns what existed before it and the backup file."""
    api = ClassicApi(server)
    before = {}  # key id -> [(blob, plaintext)] made before the backup
    multi = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    before[multi] = []
    for i in range(3):
        pt = f"version {i}".encode()
        before[multi].append((encrypt(api, multi, pt), pt))
        api.call("CreateKeyVersion", KeyId=multi)
    pt = b"after the last rotation"
    before[multi].append((encrypt(api, multi, pt), pt))
    byok = imported_key(api)
    before[byok] = [(encrypt(api, byok, b"byok"), b"byok")]
    # An import token issued before the backup, used only after the restore.
    pending = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    token = api.call("GetParametersForImport", KeyId=pending,
                     WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    for _ in range(5):
        k = api.call("CreateKey")["KeyMetadata"]["KeyId"]
        pt = os.urandom(20)
        before[k] = [(encrypt(api, k, pt), pt)]

    stop = threading.Event()
    during = []
    errors = []

    def load():
        c = ClassicApi(server)
        try:
            while not stop.is_set():
                k = c.call("CreateKey")["KeyMetadata"]["KeyId"]
                p = os.urandom(16)
                during.append((k, encrypt(c, k, p), p))
                encrypt(c, multi, p)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    path = tmp_path_factory.mktemp("backups") / "kms.backup"
    out = backup(server, path)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert out.returncode == 0, out.stderr
    assert len(during) > 5, "the write load ran during the backup"
    return {"before": before, "pending": pending, "token": token, "during": during,
            "path": path, "out": out}


def test_backup_reports_and_warns_about_the_root_key(taken, server):
    out = taken["out"]
    fp = re.search(r"^Root key fingerprint: ([0-9a-f]{32})$", out.stdout, re.M)
    assert fp, out.stdout
    assert CONTENTS in out.stdout
    assert WARNING in out.stderr
    head = taken["path"].read_bytes()[:4096].split(b"\n")
    assert head[0] == b"KMS-BACKUP 1"
    import json
    m = json.loads(head[1])
    assert m["format"] == 1 and m["payload"] == "sqlite"
    assert m["source_engine"] == ("postgresql" if server.database_url else "sqlite")
    assert m["root_key_fingerprint"] == fp.group(1)
    assert "NOT in this file" in m["contents"]
    assert m["keys"] >= len(taken["before"]) + 1
    assert os.stat(taken["path"]).st_mode & 0o077 == 0
    assert not list(taken["path"].parent.glob("*.partial*"))


def test_restore_brings_back_every_key_version_and_import_token(taken, server, tmp_path):
    dst = tmp_path / "restored"
    url = new_test_database() if server.database_url else None
    out = restore(taken["path"], dst, url)
    assert out.returncode == 0, out.stderr
    assert "Next: put the root key with fingerprint" in out.stdout
    srv = restored_server(server, dst, tmp_path / "logs", url).start()
    try:
        api = ClassicApi(srv)
        for key_id, blobs in taken["before"].items():
            md = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
            assert md["KeyState"] == "Enabled", md
            for blob, pt in blobs:
                decrypts(api, blob, pt)
        versions = api.call("ListKeyVersions", KeyId=next(iter(taken["before"])))
        assert versions["TotalCount"] == 4
        # Keys the load made while the backup ran: those in it work completely.
        present = 0
        for key_id, blob, pt in taken["during"]:
            try:
                api.call("DescribeKey", KeyId=key_id)
            except Exception:
                continue
            present += 1
            decrypts(api, blob, pt)
        assert present > 0
        # The import token issued before the backup still imports.
        t = taken["token"]
        api.call("ImportKeyMaterial", KeyId=taken["pending"], ImportToken=t["ImportToken"],
                 EncryptedKeyMaterial=wrap_key_material(t["PublicKey"], os.urandom(32),
                                                        "RSAES_OAEP_SHA_256"))
        pt = b"after restore"
        decrypts(api, encrypt(api, taken["pending"], pt), pt)
    finally:
        srv.stop()


def test_truncated_or_altered_backups_are_refused(taken, tmp_path):
    data = taken["path"].read_bytes()
    bad = tmp_path / "bad.backup"
    bad.write_bytes(data[:-1000])
    dst = tmp_path / "dst"
    out = restore(bad, dst)
    assert out.returncode == 2
    assert out.stderr.strip().endswith(
        f"error: {bad} is truncated: it has {len(data) - 1000} bytes, its manifest announces {len(data)}"), out.stderr
    assert not dst.exists()

    altered = bytearray(data)
    altered[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(altered))
    out = restore(bad, dst)
    assert out.returncode == 2
    assert re.search(
        rf"error: {re.escape(str(bad))} is damaged or was altered: its SHA-256 checksum does not "
        r"match \(recorded [0-9a-f]{64}, computed [0-9a-f]{64}\); nothing was restored$",
        out.stderr.strip()), out.stderr
    assert not dst.exists(), "a refused restore leaves no data dir behind"

    bad.write_bytes(b"SQLite format 3\0" + data[16:])
    out = restore(bad, dst)
    assert out.stderr.strip().endswith(
        f'error: {bad} is not a KMS backup (it does not start with "KMS-BACKUP 1")'), out.stderr


def test_restore_into_a_non_empty_dir_is_refused(taken, tmp_path):
    dst = tmp_path / "busy"
    dst.mkdir()
    (dst / "something").write_text("x")
    out = restore(taken["path"], dst)
    assert out.returncode == 2
    assert out.stderr.strip().endswith(
        f"error: the data dir {dst} is not empty: restore only into a new or empty data dir "
        "(nothing was changed)"), out.stderr
    assert sorted(p.name for p in dst.iterdir()) == ["something"]


def test_a_wrong_root_key_is_refused_at_start(taken, tmp_path):
    dst = tmp_path / "wrong"
    assert restore(taken["path"], dst).returncode == 0
    (dst / "root.key").write_bytes(os.urandom(32))
    os.chmod(dst / "root.key", 0o600)
    srv = KmsServer(dst, tmp_path / "logs", database_url=f"sqlite:{dst / 'kms.db'}")
    with pytest.raises(ServerStartError) as e:
        srv.start()
    assert "this database was created with a different root key" in str(e.value)


@pytest.mark.parametrize("room", ["none", "snapshot only"])
def test_a_full_disk_fails_the_backup_cleanly_and_the_server_keeps_serving(
        taken, server, small_fs, room):
    filler = fill_fs(small_fs)
    if room == "snapshot only":
        # Room for the snapshot, not for the snapshot and the backup file beside it.
        size = taken["path"].stat().st_size
        os.truncate(filler, max(0, filler.stat().st_size - size * 3 // 2))
    target = small_fs / "kms.backup"
    out = backup(server, target)
    assert out.returncode == 2, out.stdout
    # Each stage's exact failure: on PostgreSQL the rows are first written into a SQLite
    # staging copy, then compacted into the snapshot, then written out.
    staging = f"error: cannot write {target}.partial-pg.db: sqlite: database or disk is full"
    snapshot = f"error: cannot write the snapshot {target}.partial-db: database or disk is full"
    final = f"error: cannot write the backup {target}.partial: No space left on device (os error 28)"
    if server.database_url:
        wants = [staging] if room == "none" else [staging, snapshot, final]
    else:
        wants = [snapshot] if room == "none" else [final]
    assert out.stderr.strip().splitlines()[-1] in wants, out.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"], "no partial file is left"
    api = ClassicApi(server)
    k = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    decrypts(api, encrypt(api, k, b"still serving"), b"still serving")
    filler.unlink()
