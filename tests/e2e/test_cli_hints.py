"""The command line's hint lines (issue 15): the server's `Code: Message (RequestId)` stays the
first line, exactly as before (the import stays no oracle), and `kms` adds `hint:` lines where
the client side knows more — a withdrawn, foreign or swapped token, base64 with line breaks,
a key whose material expired or was deleted, different material than the first import —
plus the public key as DER for `kms wrap`, each action's own help line, and credentials shown
as options in usage lines."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from kms_helpers import b64, kms_bin

ERROR_LINE = r"^{code}: {message} \([0-9A-F-]{{36}}\)$"


def run(args, env, cwd, check=True, stdin=None):
    p = subprocess.run([str(kms_bin()), *args], env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=120, input=stdin)
    if check:
        assert p.returncode == 0, f"kms {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def env_for(server, tmp_path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    e.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
             KMS_ENDPOINT=f"http://127.0.0.1:{server.port}", KMS_CLI_CONFIG=str(tmp_path / "cli.toml"))
    return e


@pytest.fixture
def env(server, tmp_path):
    return env_for(server, tmp_path)


def refused(p, code: str, message: str) -> list[str]:
    """Asserts exit 1 and the server's error as the first line, unchanged; returns the hints."""
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert re.match(ERROR_LINE.format(code=re.escape(code), message=re.escape(message)), lines[0]), lines
    assert all(ln.startswith(("hint: ", "  - ")) for ln in lines[1:]), lines
    return lines[1:]


def new_external_key(env, cwd) -> str:
    return run(["create-external-key", "--output", "value=KeyMetadata.KeyId"], env, cwd).stdout.strip()


def get_params(env, cwd, key, alg="RSAES_OAEP_SHA_1"):
    out = run(["GetParametersForImport", "--KeyId", key, "--WrappingAlgorithm", alg, "--WrappingKeySpec",
               "RSA_2048", "--output", "value=PublicKey,ImportToken"], env, cwd).stdout.split("\n")
    (cwd / "PublicKey_base64.txt").write_text(out[0])
    (cwd / "ImportToken.txt").write_text(out[1])
    return out[0], out[1]


def wrap(env, cwd, public_key_file="PublicKey_base64.txt", alg="RSAES_OAEP_SHA_1", material="KeyMaterial.bin"):
    run(["wrap", "--public-key", public_key_file, "--algorithm", alg, "--in", material,
         "--out", "EncryptedKeyMaterial_base64.txt"], env, cwd)
    return (cwd / "EncryptedKeyMaterial_base64.txt").read_text()


def import_(env, cwd, key, token, wrapped, check=False):
    return run(["ImportKeyMaterial", "--KeyId", key, "--ImportToken", token, "--EncryptedKeyMaterial", wrapped],
               env, cwd, check=check)


TOKEN_HINT = ("hint: the import token is not usable: it was withdrawn (10 failed imports with it), is another "
              "key's or another server's, or the token and public key files are swapped. Get new import parameters "
              "(GetParametersForImport), wrap the material with the new public key, and import with the new token.")


def test_invalid_token_withdrawn_foreign_or_swapped_says_get_new_parameters(env, tmp_path):
    key = new_external_key(env, tmp_path)
    other = new_external_key(env, tmp_path)
    (tmp_path / "KeyMaterial.bin").write_bytes(os.urandom(32))
    public, token = get_params(env, tmp_path, key)
    wrapped = wrap(env, tmp_path)
    # Another key's token.
    _, other_token = get_params(env, tmp_path, other)
    hints = refused(import_(env, tmp_path, key, other_token, wrapped), "InvalidImportToken", "import token is invalid.")
    assert hints == [TOKEN_HINT]
    # The token and public key files swapped.
    hints = refused(import_(env, tmp_path, key, public, wrapped), "InvalidImportToken", "import token is invalid.")
    assert hints == [TOKEN_HINT]
    # A token withdrawn after 10 failed imports: each failure gets the checklist, then the token hint.
    garbage = b64(os.urandom(256))
    for _ in range(10):
        hints = refused(import_(env, tmp_path, key, token, garbage), "InvalidKeyMaterial", "key material is invalid.")
        assert hints[0].startswith("hint: the server does not say which of these failed"), hints
        assert any("WrappingAlgorithm of this token's GetParametersForImport" in h for h in hints), hints
        assert any("exactly 32 bytes" in h for h in hints), hints
        assert any("same material" in h for h in hints), hints
    hints = refused(import_(env, tmp_path, key, token, wrapped), "InvalidImportToken", "import token is invalid.")
    assert hints == [TOKEN_HINT]
    # New parameters, as the hint says, work.
    _, token = get_params(env, tmp_path, key)
    import_(env, tmp_path, key, token, wrap(env, tmp_path), check=True)


def test_base64_with_line_breaks_says_openssl_minus_A(env, tmp_path):
    key = new_external_key(env, tmp_path)
    (tmp_path / "KeyMaterial.bin").write_bytes(os.urandom(32))
    _, token = get_params(env, tmp_path, key, "RSAES_OAEP_SHA_256")
    subprocess.run(["openssl", "enc", "-d", "-base64", "-A", "-in", "PublicKey_base64.txt", "-out", "PublicKey.bin"],
                   cwd=tmp_path, check=True)
    subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin",
                    "-in", "KeyMaterial.bin", "-out", "ct.bin", "-pkeyopt", "rsa_padding_mode:oaep",
                    "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"], cwd=tmp_path, check=True)
    # Without -A: wrapped at 64 columns.
    subprocess.run(["openssl", "enc", "-e", "-base64", "-in", "ct.bin", "-out", "wrapped_lines.txt"],
                   cwd=tmp_path, check=True)
    wrapped = (tmp_path / "wrapped_lines.txt").read_text()
    assert wrapped.strip().count("\n") >= 4
    p = import_(env, tmp_path, key, token, wrapped)
    assert p.returncode == 1
    first, *hints = p.stderr.strip().splitlines()
    assert first.startswith("InvalidParameter: ") and "EncryptedKeyMaterial" in first, first
    assert len(hints) == 1 and hints[0].startswith("hint: EncryptedKeyMaterial has line breaks: "), hints
    assert "openssl enc -e -base64 -A" in hints[0]
    # As one line, the same bytes import.
    import_(env, tmp_path, key, token, b64((tmp_path / "ct.bin").read_bytes()), check=True)


def test_import_material_says_different_material_than_the_first_import(env, tmp_path):
    key = new_external_key(env, tmp_path)
    (tmp_path / "first.bin").write_bytes(os.urandom(32))
    (tmp_path / "other.bin").write_bytes(os.urandom(32))
    run(["import-material", "--key-id", key, "--material-file", "first.bin"], env, tmp_path)
    fp = tmp_path / "material-fingerprints.toml"  # next to KMS_CLI_CONFIG
    assert oct(fp.stat().st_mode & 0o777) == "0o600"
    text = fp.read_text()
    assert key in text
    assert b64((tmp_path / "first.bin").read_bytes()) not in text and (tmp_path / "first.bin").read_bytes().hex() not in text
    p = run(["import-material", "--key-id", key, "--material-file", "other.bin"], env, tmp_path, check=False)
    hints = refused(p, "InvalidKeyMaterial", "key material is invalid.")
    assert len(hints) == 1 and hints[0].startswith(
        f"hint: this is different material than the first import into key {key} from this machine"), hints
    # The same material again is accepted (and changes the expiry).
    out = run(["import-material", "--key-id", key, "--material-file", "first.bin", "--expire",
               "2031-01-01T00:00:00Z"], env, tmp_path).stdout
    assert '"MaterialExpireTime": "2031-01-01T00:00:00Z"' in out
    # A key first imported elsewhere (openssl, another machine): no record, so no verdict.
    other_key = new_external_key(env, tmp_path)
    (tmp_path / "KeyMaterial.bin").write_bytes(os.urandom(32))
    _, token = get_params(env, tmp_path, other_key)
    import_(env, tmp_path, other_key, token, wrap(env, tmp_path), check=True)
    p = run(["import-material", "--key-id", other_key, "--material-file", "other.bin"], env, tmp_path, check=False)
    hints = refused(p, "InvalidKeyMaterial", "key material is invalid.")
    assert len(hints) == 1 and "No import into this key from this machine is on record" in hints[0], hints
    assert "different material than the first import" not in hints[0]


def test_pending_import_hints_from_describe_key_and_the_ciphertext(own_server, tmp_path):
    env = env_for(own_server, tmp_path)
    # Never imported.
    fresh = new_external_key(env, tmp_path)
    p = run(["Encrypt", "--KeyId", fresh, "--Plaintext", b64(b"x")], env, tmp_path, check=False)
    hints = refused(p, "Rejected.PendingImport", "The request was rejected because the key state is PendingImport.")
    assert len(hints) == 1 and hints[0].startswith(f"hint: key {fresh} has no key material: import it"), hints
    # Imported from here, then deleted: Encrypt knows from the local record, Decrypt from the ciphertext.
    key = new_external_key(env, tmp_path)
    (tmp_path / "m.bin").write_bytes(os.urandom(32))
    run(["import-material", "--key-id", key, "--material-file", "m.bin"], env, tmp_path)
    blob = run(["Encrypt", "--KeyId", key, "--Plaintext", b64(b"kept"), "--output", "value=CiphertextBlob"],
               env, tmp_path).stdout.strip()
    run(["DeleteKeyMaterial", "--KeyId", key], env, tmp_path)
    p = run(["Decrypt", "--CiphertextBlob", blob], env, tmp_path, check=False)
    hints = refused(p, "Rejected.PendingImport", "The request was rejected because the key state is PendingImport.")
    assert len(hints) == 1 and hints[0].startswith(
        f"hint: key {key} held material when this ciphertext was made; it has since expired or been deleted"), hints
    assert f"import the same material again (kms import-material --key-id {key}" in hints[0]
    p = run(["Encrypt", "--KeyId", key, "--Plaintext", b64(b"x")], env, tmp_path, check=False)
    hints = refused(p, "Rejected.PendingImport", "The request was rejected because the key state is PendingImport.")
    assert len(hints) == 1 and hints[0].startswith(
        f"hint: material was imported into key {key} from this machine before"), hints
    # Doing what the hint says brings the old ciphertext back.
    run(["import-material", "--key-id", key, "--material-file", "m.bin"], env, tmp_path)
    pt = run(["Decrypt", "--CiphertextBlob", blob, "--output", "value=Plaintext"], env, tmp_path).stdout.strip()
    assert pt == b64(b"kept")
    # Expired material (the server's clock moves past MaterialExpireTime).
    exp = new_external_key(env, tmp_path)
    run(["import-material", "--key-id", exp, "--material-file", "m.bin", "--expire-unix",
         str(int(own_server.now().timestamp()) + 3600)], env, tmp_path)
    blob = run(["Encrypt", "--KeyId", exp, "--Plaintext", b64(b"y"), "--output", "value=CiphertextBlob"],
               env, tmp_path).stdout.strip()
    own_server.advance_clock(7200)
    p = run(["ReEncrypt", "--CiphertextBlob", blob, "--DestinationKeyId", key], env, tmp_path, check=False)
    hints = refused(p, "Rejected.PendingImport", "The request was rejected because the key state is PendingImport.")
    assert len(hints) == 1 and hints[0].startswith(f"hint: key {exp} held material"), hints


def test_wrap_takes_the_public_key_as_der_and_says_what_else_it_takes(env, tmp_path):
    key = new_external_key(env, tmp_path)
    (tmp_path / "KeyMaterial.bin").write_bytes(os.urandom(32))
    _, token = get_params(env, tmp_path, key, "RSAES_OAEP_SHA_1")
    subprocess.run(["openssl", "enc", "-d", "-base64", "-A", "-in", "PublicKey_base64.txt", "-out", "PublicKey.bin"],
                   cwd=tmp_path, check=True)
    wrapped = wrap(env, tmp_path, public_key_file="PublicKey.bin")
    import_(env, tmp_path, key, token, wrapped, check=True)
    (tmp_path / "junk.bin").write_bytes(b"\xff\xfe not a key")
    p = run(["wrap", "--public-key", "junk.bin", "--in", "KeyMaterial.bin"], env, tmp_path, check=False)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: junk.bin is neither the PublicKey's base64 text (PublicKey_base64.txt) "
                                "nor its DER (PublicKey.bin)"), p.stderr
    # import-material with parameters already in hand (e.g. downloaded from the console), DER or text.
    key2 = new_external_key(env, tmp_path)
    get_params(env, tmp_path, key2, "RSAES_PKCS1_V1_5")
    out = run(["import-material", "--key-id", key2, "--material-file", "KeyMaterial.bin", "--algorithm",
               "RSAES_PKCS1_V1_5", "--public-key", "PublicKey_base64.txt", "--import-token", "ImportToken.txt"],
              env, tmp_path).stdout
    assert '"KeyState": "Enabled"' in out


def test_help_lines_and_usage_lines(env, tmp_path):
    top = run(["--help"], env, tmp_path).stdout
    assert "Options of every command that talks to a server" not in top
    assert re.search(r"^  Encrypt\s+\S", top, re.M)
    enc = run(["Encrypt", "--help"], env, tmp_path).stdout
    assert "Options of every command" not in enc
    assert enc.splitlines()[0] != ""
    assert "Usage: kms Encrypt [OPTIONS] --KeyId <VALUE> --Plaintext <VALUE>" in enc
    # Credentials in the environment (as the README says to set them) are not shown as required.
    p = run(["DescribeKey"], env, tmp_path, check=False)
    assert p.returncode == 2
    assert "Usage: kms DescribeKey [OPTIONS] --KeyId <VALUE>\n" in p.stderr, p.stderr
    assert "access-key" not in p.stderr, p.stderr
    imp = run(["import-material", "--help"], env, tmp_path).stdout
    assert "Usage: kms import-material [OPTIONS] --key-id <KEY_ID> --material-file <MATERIAL_FILE>" in imp
