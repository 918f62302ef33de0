"""The web console's part of the first ten minutes (issue 15), in a real headless Chromium:
sign-in defaults to an access key while no console user exists, remembers the kind last used,
and keeps the kind and id after a failed attempt; a created key opens its page; the import
dialog defaults to RSAES_OAEP_SHA_1 and shows the openssl commands of the chosen algorithm,
which run as shown (and copy); a refused import shows the checklist and the hints the page
can give (another key's token, base64 with line breaks), the server's answer unchanged.

KMS_CONSOLE_SCREENSHOTS=1 refreshes docs/console/signin-access-key.png,
import-dialog.png and import-checklist.png.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kms_helpers import WRAPPING_ALGORITHMS, ClassicApi
from test_console import (CHROMIUM, CHROMIUM_ARGS, ConsoleServer, expect, get_params_in_page,
                          import_in_page, playwright_api, shot, wait_state)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found (scripts/install-deps.sh)", pytrace=False)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture(scope="module")
def fresh(kms_binary, tmp_path_factory):
    """A server with no console user (as after a first start): only access keys sign in."""
    srv = ConsoleServer(tmp_path_factory.mktemp("console-first-run"))
    srv.start()
    yield srv
    srv.stop()


def checked_kind(page) -> str:
    return page.locator("input[name=kind]:checked").get_attribute("value")


def signin(page, srv, ak=None, sk=None):
    page.goto(srv.console + "/console/signin")
    page.check("#kind-ak")
    page.fill("#access_key_id", ak or srv.ak)
    page.fill("#access_key_secret", sk or srv.sk)
    page.click("#signin-submit")


def test_signin_defaults_to_access_key_remembers_and_keeps_a_failed_attempt(fresh, browser, page, context):
    page.goto(fresh.console + "/console/signin")
    assert checked_kind(page) == "ak"
    expect(page.locator("#access_key_id")).to_be_visible()
    expect(page.locator("#user_name")).to_be_hidden()
    # A wrong secret: the same kind and id come back, the secret does not.
    page.fill("#access_key_id", fresh.ak)
    page.fill("#access_key_secret", "wrong-secret")
    page.click("#signin-submit")
    expect(page.locator("#signin-message")).to_have_text("The sign-in details are not correct.")
    assert checked_kind(page) == "ak"
    expect(page.locator("#access_key_id")).to_be_visible()
    expect(page.locator("#access_key_id")).to_have_value(fresh.ak)
    expect(page.locator("#access_key_secret")).to_have_value("")
    shot(page, "signin-access-key", full_page=False)
    page.fill("#access_key_secret", fresh.sk)
    page.click("#signin-submit")
    page.wait_for_url(fresh.console + "/console/keys")

    # An AccessKey ID typed as a console user name: the page says what it looks like.
    other = context.new_page()
    other.goto(fresh.console + "/console/signin")
    other.check("#kind-user")
    other.fill("#user_name", fresh.ak)
    other.fill("#password", fresh.sk)
    other.click("#signin-submit")
    expect(other.locator("#signin-message")).to_have_text("The sign-in details are not correct.")
    expect(other.locator("#signin-hint")).to_contain_text('looks like an AccessKey ID')
    assert checked_kind(other) == "user"  # the failed attempt's kind, kept
    expect(other.locator("#user_name")).to_have_value(fresh.ak)

    # Once a console user exists, a new browser gets that kind first; this browser keeps the
    # kind it last signed in with (its last attempt was "user", above).
    fresh.add_console_user("carol")
    newcomer = browser.new_context()
    try:
        p2 = newcomer.new_page()
        p2.goto(fresh.console + "/console/signin")
        assert checked_kind(p2) == "user"
        signin(p2, fresh)  # signs in with the access key
        p2.wait_for_url(fresh.console + "/console/keys")
        p2.goto(fresh.console + "/console/signin")
        assert checked_kind(p2) == "ak"  # remembered, though console users exist
        expect(p2.locator("#access_key_id")).to_be_visible()
    finally:
        newcomer.close()
    page.goto(fresh.console + "/console/signin")
    assert checked_kind(page) == "user"


def create_external_key(page, srv, alias) -> str:
    page.goto(srv.console + "/console/keys")
    page.click("#create-key")
    page.fill("#ck-alias", alias)
    page.click("#ck-advanced summary")
    page.check("#ck-origin-external")
    page.check("#ck-ack")
    page.click("#ck-confirm")
    page.wait_for_url("**/console/keys/*")  # the created key's page opens
    expect(page.locator("h1")).to_have_text(alias)
    assert page.locator("#material-status").inner_text() == "Not imported"
    key_id = page.locator("dd[data-field=KeyId]").inner_text()
    assert page.url == f"{srv.console}/console/keys/{key_id}"
    return key_id


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_import_dialog_default_and_its_commands_run_as_shown(fresh, page, context, tmp_path, algorithm):
    signin(page, fresh)
    page.wait_for_url(fresh.console + "/console/keys")
    key_id = create_external_key(page, fresh, f"alias/first-run-{algorithm.lower().replace('_', '-')}")
    page.click("#btn-get-params")
    expect(page.locator("#wrap-alg")).to_have_value("RSAES_OAEP_SHA_1")
    expect(page.locator("#cmd-RSAES_OAEP_SHA_1")).to_be_visible()
    for other in WRAPPING_ALGORITHMS:
        if other != "RSAES_OAEP_SHA_1":
            expect(page.locator(f"#cmd-{other}")).to_be_hidden()
    page.click("#dlg-params [data-close]")

    pub, token_file = get_params_in_page(page, tmp_path, algorithm)  # selects, Next, downloads
    page.click("#btn-get-params")
    page.select_option("#wrap-alg", algorithm)
    shown = page.locator("pre.cmd:visible")
    expect(shown).to_have_count(1)
    assert shown.get_attribute("data-alg") == algorithm
    commands = shown.inner_text()
    if algorithm == "RSAES_OAEP_SHA_1":
        shot(page, "import-dialog", full_page=False)
    # The copy button copies exactly what is shown.
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=fresh.console)
    page.click("#copy-cmd")
    expect(page.locator("#copy-cmd")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator(f"#cmd-{algorithm}").text_content()
    page.click("#dlg-params [data-close]")

    # The commands, pasted into a shell where PublicKey_base64.txt was saved.
    (tmp_path / "PublicKey_base64.txt").write_text(pub)
    p = subprocess.run(["bash", "-c", "set -euo pipefail\n" + commands], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    import_in_page(page, tmp_path / "EncryptedKeyMaterial_base64.txt", token_file)
    wait_state(page, "Enabled")
    api = ClassicApi(fresh)
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_a_refused_import_shows_the_checklist_and_what_the_page_can_tell(fresh, page, tmp_path):
    api = ClassicApi(fresh)
    other = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    other_token = api.call("GetParametersForImport", KeyId=other, WrappingAlgorithm="RSAES_OAEP_SHA_1",
                           WrappingKeySpec="RSA_2048")["ImportToken"]
    signin(page, fresh)
    page.wait_for_url(fresh.console + "/console/keys")
    create_external_key(page, fresh, "alias/first-run-refusals")
    pub, token_file = get_params_in_page(page, tmp_path, "RSAES_OAEP_SHA_1")
    page.click("#btn-get-params")
    commands = page.locator("#cmd-RSAES_OAEP_SHA_1").inner_text()
    page.click("#dlg-params [data-close]")
    (tmp_path / "PublicKey_base64.txt").write_text(pub)
    subprocess.run(["bash", "-c", "set -euo pipefail\n" + commands], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    good = tmp_path / "EncryptedKeyMaterial_base64.txt"
    help_ = page.locator("#im-help")
    items = page.locator("#im-checklist li")

    # Another key's token: the server's answer, the token hint, the checklist.
    wrong = tmp_path / "OtherToken.txt"
    wrong.write_text(other_token)
    msg = import_in_page(page, good, wrong, expect_ok=False)
    assert msg == "The server refused — InvalidImportToken: import token is invalid.", msg
    expect(help_).to_be_visible()
    expect(page.locator("#im-hint-token")).to_be_visible()
    expect(page.locator("#im-hint-lines")).to_be_hidden()
    expect(items).to_have_count(4)
    expect(items.nth(0)).to_contain_text("algorithm chosen for this token")
    expect(items.nth(1)).to_contain_text("exactly 32 bytes")
    expect(items.nth(2)).to_contain_text("same material")
    expect(items.nth(3)).to_contain_text("not withdrawn")
    page.click("#dlg-import [data-close]")

    # base64 wrapped at 64 columns (openssl without -A): the line-break hint, not the token one.
    subprocess.run(["openssl", "enc", "-e", "-base64", "-in", "EncryptedKeyMaterial.bin", "-out", "wrapped.txt"],
                   cwd=tmp_path, check=True)
    msg = import_in_page(page, tmp_path / "wrapped.txt", token_file, expect_ok=False)
    assert msg.startswith("The server refused — InvalidParameter: "), msg
    expect(page.locator("#im-hint-lines")).to_be_visible()
    expect(page.locator("#im-hint-lines")).to_contain_text("openssl enc -e -base64 -A")
    expect(page.locator("#im-hint-token")).to_be_hidden()
    page.click("#dlg-import [data-close]")

    # Reopened, the dialog starts clean.
    page.click("#btn-import")
    expect(help_).to_be_hidden()
    page.click("#dlg-import [data-close]")

    # The right files import; different material after a delete gets the checklist alone.
    import_in_page(page, good, token_file)
    wait_state(page, "Enabled")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-delete-material")
    wait_state(page, "PendingImport")
    pub, token_file = get_params_in_page(page, tmp_path, "RSAES_OAEP_SHA_1")
    (tmp_path / "PublicKey_base64.txt").write_text(pub)
    subprocess.run(["bash", "-c", "set -euo pipefail\n" + commands], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)  # `openssl rand` again: new material
    msg = import_in_page(page, good, token_file, expect_ok=False)
    assert msg == "The server refused — InvalidKeyMaterial: key material is invalid.", msg
    expect(help_).to_be_visible()
    expect(page.locator("#im-help [data-hint]:visible")).to_have_count(0)
    expect(items).to_have_count(4)
    shot(page, "import-checklist", full_page=False)
