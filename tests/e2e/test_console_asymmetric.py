"""Web console for asymmetric keys (issue 17): the create dialog makes RSA and EC keys, the
key page shows each version's public key and downloads it as a PEM file that the API's
GetPublicKey and openssl agree with."""
from __future__ import annotations

import subprocess

from kms_helpers import make_api
from test_console import (ConsoleServer, browser, context, expect, on_keys,  # noqa: F401
                          page, signin_ak)

import pytest


@pytest.fixture(scope="module")
def csrv(kms_binary, tmp_path_factory):
    srv = ConsoleServer(tmp_path_factory.mktemp("console-asym"))
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("spec,usage,shown_usage", [
    ("EC_P256", "", "SIGN/VERIFY"),
    ("RSA_2048", "ENCRYPT/DECRYPT", "ENCRYPT/DECRYPT"),
])
def test_create_asymmetric_key_and_download_its_public_key(csrv, page, tmp_path, spec, usage, shown_usage):
    signin_ak(page, csrv)
    on_keys(page, csrv)
    alias = f"alias/console-{spec.lower()}"
    page.click("#create-key")
    page.fill("#ck-alias", alias)
    page.select_option("#ck-spec", spec)
    page.select_option("#ck-usage", usage)
    page.click("#ck-confirm")
    page.wait_for_url("**/console/keys/*")
    expect(page.locator("h1")).to_have_text(alias)
    expect(page.locator('dd[data-field="KeySpec"]')).to_have_text(spec)
    expect(page.locator('dd[data-field="KeyUsage"]')).to_have_text(shown_usage)
    api = make_api("classic", csrv)
    key = api.call("DescribeKey", KeyId=alias)["KeyMetadata"]["KeyId"]
    ver = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    pem = api.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"]
    # Shown on the page (no "primary" badge: asymmetric keys have none) ...
    row = page.locator("#versions tbody tr").first
    expect(row.locator(".badge")).to_have_count(0)
    row.locator("details.public-key summary").click()
    assert row.locator("details.public-key pre").inner_text().strip() == pem.strip()
    # ... and downloaded as a file
    with page.expect_download() as d:
        row.locator("a.public-key-download").click()
    path = tmp_path / "pub.pem"
    d.value.save_as(path)
    assert d.value.suggested_filename == f"{key}-{ver}.pem"
    assert path.read_text() == pem
    out = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(path), "-noout", "-text"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out
    assert ("Public-Key: (2048 bit)" if spec == "RSA_2048" else "prime256v1") in out.stdout, out.stdout
    # Another account cannot download it.
    acct = csrv.new_account()
    page.context.clear_cookies()
    signin_ak(page, csrv, acct["AccessKeyId"], acct["AccessKeySecret"])
    on_keys(page, csrv)
    r = page.request.get(f"{csrv.console}/console/keys/{key}/versions/{ver}/public-key")
    assert r.status == 404 and "Forbidden.KeyNotFound" in r.text()
