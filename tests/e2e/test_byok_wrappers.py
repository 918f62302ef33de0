"""BYOK with material wrapped by Java (the Alibaba guide's Java sample: X509EncodedKeySpec +
Cipher "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" with MGF1-SHA256) and by Go (x509 +
rsa.EncryptOAEP / rsa.EncryptPKCS1v15), for each wrapping algorithm, through the Tea SDK."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kms_helpers import REPO_ROOT, WRAPPING_ALGORITHMS, b64, unb64

WRAPPERS = REPO_ROOT / "tests" / "wrappers"


def java_wrap(alg: str, pub_file, mat_file) -> str:
    java = shutil.which("java")
    assert java, "java is needed (Debian: default-jdk-headless); scripts/test.sh installs it"
    out = subprocess.run([java, str(WRAPPERS / "WrapKeyMaterial.java"), alg, str(pub_file), str(mat_file)],
                         check=True, capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def go_wrap(alg: str, pub_file, mat_file) -> str:
    go = shutil.which("go")
    assert go, "go is needed (Debian: golang-go); scripts/test.sh installs it"
    env = dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="off", GOCACHE=str(REPO_ROOT / "target" / "gocache"))
    out = subprocess.run([go, "run", str(WRAPPERS / "wrap.go"), alg, str(pub_file), str(mat_file)],
                         check=True, capture_output=True, text=True, timeout=300, env=env)
    return out.stdout.strip()


@pytest.mark.parametrize("wrapper", [java_wrap, go_wrap], ids=["java", "go"])
@pytest.mark.parametrize("alg", WRAPPING_ALGORITHMS)
def test_import_with_material_wrapped_in_other_languages(server, tea, tmp_path, wrapper, alg):
    api = tea(server)
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm=alg, WrappingKeySpec="RSA_2048")
    pub = tmp_path / "PublicKey_base64.txt"
    pub.write_text(params["PublicKey"])
    material = os.urandom(32)
    mat = tmp_path / "KeyMaterial.bin"
    mat.write_bytes(material)
    wrapped = wrapper(alg, pub, mat)
    assert len(unb64(wrapped)) == 256
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=params["ImportToken"],
             EncryptedKeyMaterial=wrapped, KeyMaterialExpireUnix=0)
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    blob = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"wrapped elsewhere"))["CiphertextBlob"]
    assert unb64(api.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"wrapped elsewhere"
