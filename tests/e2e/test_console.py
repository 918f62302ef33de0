"""Web console (/console) in a real headless browser: Debian's /usr/bin/chromium driven by
Python Playwright (no `playwright install`; the system browser is used).

Covers: sign-in with an access key and with a console user (and wrong credentials), keyboard
sign-in, the language switch (remembered), the key list (filters, search), the BYOK flow for
each wrapping algorithm (public key and token downloaded from the page, material wrapped by
the real `openssl`, files uploaded through the page, the key then used through the SDK), the
server's errors for a wrong token and for different material, key actions (enable/disable,
deletion schedule/cancel, rotation, aliases, tags), CSRF refusal, idle-session expiry and
the audit trail.

Set KMS_CONSOLE_SCREENSHOTS=1 to refresh the PNGs in docs/console/.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from kms_helpers import (REPO_ROOT, WRAPPING_ALGORITHMS, ClassicApi, KmsServer, b64, free_port,
                         kms_bin, unb64)

import playwright.sync_api as playwright_api  # noqa: E402  (tests/requirements.txt)

expect = playwright_api.expect

CHROMIUM = os.environ.get("KMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OPENSSL = shutil.which("openssl")
PASSWORD = "correct-horse-battery-staple"
SHOTS = os.environ.get("KMS_CONSOLE_SCREENSHOTS") == "1"
SHOT_DIR = REPO_ROOT / "docs" / "console"


class ConsoleServer(KmsServer):
    """A KmsServer whose web console listens on its own free port."""

    def __init__(self, base: Path, *extra: str):
        self.console_port = free_port()
        super().__init__(base / "data", base / "logs",
                         extra_args=["--console-listen", f"127.0.0.1:{self.console_port}", *extra])

    @property
    def console(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def add_console_user(self, name: str, password: str = PASSWORD) -> None:
        env = dict(os.environ, KMS_CONSOLE_PASSWORD=password)
        out = subprocess.run([str(kms_bin()), "admin", "console-user", "create", "--data-dir",
                              str(self.data_dir), *self.db_args(), name], env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert f"Created console user {name} in account {self.account_id}." in out.stdout


@pytest.fixture(scope="module")
def csrv(kms_binary, tmp_path_factory):
    srv = ConsoleServer(tmp_path_factory.mktemp("console"), "--region", "cn-hangzhou,cn-shanghai")
    srv.start()
    srv.add_console_user("alice")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install the Debian packages chromium and chromium-driver "
                    f"(scripts/install-deps.sh)", pytrace=False)
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


def shot(page, name: str, full_page: bool = True) -> None:
    if SHOTS:
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT_DIR / f"{name}.png"), full_page=full_page)


def signin_ak(page, srv, ak=None, sk=None):
    page.goto(srv.console + "/console/signin")
    page.check("#kind-ak")
    page.fill("#access_key_id", ak or srv.ak)
    page.fill("#access_key_secret", sk or srv.sk)
    page.click("#signin-submit")


def signin_user(page, srv, name="alice", password=PASSWORD):
    page.goto(srv.console + "/console/signin")
    page.check("#kind-user")
    page.fill("#user_name", name)
    page.fill("#password", password)
    page.click("#signin-submit")


def on_keys(page, srv):
    page.wait_for_url(srv.console + "/console/keys")
    assert page.locator("h1").inner_text() == "Keys"


def create_key_in_page(page, alias, external=False, description="", rotation_days=""):
    """Creates a key through the dialog; the new key's page opens (issue 15); then back to
    the list the key was created from, and its row there."""
    list_url = page.url
    page.click("#create-key")
    page.fill("#ck-alias", alias)
    page.fill("#ck-desc", description)
    if rotation_days:
        page.fill("#ck-rot", rotation_days)
    if external:
        page.click("#ck-advanced summary")
        page.check("#ck-origin-external")
        page.check("#ck-ack")
    page.click("#ck-confirm")
    page.wait_for_url("**/console/keys/*")
    expect(page.locator("h1")).to_have_text(alias)
    page.goto(list_url)
    row = page.locator("#keys-table tr", has=page.locator(f"text={alias}"))
    row.wait_for()
    return row


def wait_state(page, state: str) -> None:
    expect(page.locator("#key-state .badge")).to_have_text(state)


def key_state(page) -> str:
    return page.locator("#key-state .badge").inner_text()


def wrap_with_openssl(tmp: Path, public_key_b64: str, algorithm: str, material: bytes | None = None) -> Path:
    """Wraps key material with the documented openssl commands; returns the base64 file."""
    assert OPENSSL, "openssl CLI not found"

    def run(*args):
        subprocess.run([OPENSSL, *args], cwd=tmp, check=True, capture_output=True)

    (tmp / "PublicKey_base64.txt").write_text(public_key_b64)
    if material is None:
        run("rand", "-out", "KeyMaterial.bin", "32")
    else:
        (tmp / "KeyMaterial.bin").write_bytes(material)
    run("enc", "-d", "-base64", "-A", "-in", "PublicKey_base64.txt", "-out", "PublicKey.bin")
    if algorithm == "RSAES_OAEP_SHA_1":
        run("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin",
            "-in", "KeyMaterial.bin", "-out", "EncryptedKeyMaterial.bin",
            "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1")
    elif algorithm == "RSAES_OAEP_SHA_256":
        run("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin",
            "-in", "KeyMaterial.bin", "-out", "EncryptedKeyMaterial.bin",
            "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
            "-pkeyopt", "rsa_mgf1_md:sha256")
    else:
        run("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin",
            "-in", "KeyMaterial.bin", "-out", "EncryptedKeyMaterial.bin", "-pkeyopt", "rsa_padding_mode:pkcs1")
    run("enc", "-e", "-base64", "-A", "-in", "EncryptedKeyMaterial.bin", "-out", "EncryptedKeyMaterial_base64.txt")
    return tmp / "EncryptedKeyMaterial_base64.txt"


def get_params_in_page(page, tmp: Path, algorithm: str) -> tuple[str, Path]:
    """Get import parameters through the dialog; downloads both files. Returns (public key, token file)."""
    page.click("#btn-get-params")
    page.select_option("#wrap-alg", algorithm)
    page.click("#params-next")
    page.locator("#params-result").wait_for()
    assert page.locator("#token-expire").inner_text().endswith("Z")
    with page.expect_download() as d:
        page.click("#dl-public-key")
    pub_path = tmp / "downloaded_PublicKey_base64.txt"
    d.value.save_as(str(pub_path))
    assert d.value.suggested_filename == "PublicKey_base64.txt"
    with page.expect_download() as d:
        page.click("#dl-token")
    token_path = tmp / "ImportToken.txt"
    d.value.save_as(str(token_path))
    assert d.value.suggested_filename == "ImportToken.txt"
    page.click("#dlg-params [data-close]")
    return pub_path.read_text(), token_path


def import_in_page(page, material_file: Path, token_file: Path, expect_ok=True):
    page.click("#btn-import")
    page.set_input_files("#im-material", str(material_file))
    page.set_input_files("#im-token", str(token_file))
    page.check("#im-never")
    page.click("#im-confirm")
    if expect_ok:
        page.locator("#dlg-import").wait_for(state="hidden")
    else:
        page.locator("#import-form .form-error").wait_for()
        return page.locator("#import-form .form-error").inner_text()


def audit_lines(srv) -> list[dict]:
    path = srv.data_dir / "audit" / "audit.log"
    deadline = time.time() + 5
    lines: list[dict] = []
    while time.time() < deadline:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            break
        time.sleep(0.1)
    return lines


# ------------------------------------------------------------------------------------------
# sign-in
# ------------------------------------------------------------------------------------------
def test_unauthenticated_pages_redirect_to_signin(csrv, page):
    for path in ("/console", "/console/keys", "/console/keys/abc"):
        page.goto(csrv.console + path)
        assert page.url == csrv.console + "/console/signin"
    r = page.request.post(csrv.console + "/console/api/CreateKey", form={"Origin": "EXTERNAL"})
    assert r.status == 401
    assert r.json()["Code"] == "Console.SessionExpired"


def test_signin_with_access_key(csrv, page, context):
    signin_ak(page, csrv, sk="wrong-secret")
    assert page.url == csrv.console + "/console/signin"
    assert page.locator("#signin-message").inner_text() == "The sign-in details are not correct."
    signin_ak(page, csrv)
    on_keys(page, csrv)
    assert f"console:{csrv.ak}" in page.locator(".who").inner_text()
    cookie = next(c for c in context.cookies() if c["name"] == "kms_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"


def test_signin_with_console_user_and_signout(csrv, page):
    signin_user(page, csrv, password="not-the-password")
    assert page.locator("#signin-message").inner_text() == "The sign-in details are not correct."
    signin_user(page, csrv, name="nobody")
    assert page.locator("#signin-message").is_visible()
    page.goto(csrv.console + "/console/signin")
    shot(page, "signin", full_page=False)
    signin_user(page, csrv)
    on_keys(page, csrv)
    assert "console-user:alice" in page.locator(".who").inner_text()
    assert csrv.account_id in page.locator(".who").inner_text()
    page.click(".signout button")
    page.wait_for_url(csrv.console + "/console/signin?out=1")
    assert page.locator("#signin-message").inner_text() == "You are signed out."
    page.goto(csrv.console + "/console/keys")
    assert page.url == csrv.console + "/console/signin"


def test_keyboard_signin(csrv, page):
    page.goto(csrv.console + "/console/signin")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "user_name":
            break
    assert page.evaluate("document.activeElement.id") == "user_name"
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    on_keys(page, csrv)
    # the key list's controls are reachable with the keyboard too
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "create-key":
            break
    assert page.evaluate("document.activeElement.id") == "create-key"
    page.keyboard.press("Enter")
    assert page.locator("#dlg-create").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#dlg-create").is_visible()


def test_language_switch_is_remembered(csrv, page, context):
    signin_user(page, csrv)
    on_keys(page, csrv)
    page.select_option("#lang-select", "zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert page.locator("h1").inner_text() == "密钥"
    assert page.locator("#create-key").inner_text() == "创建密钥"
    shot(page, "keys-zh", full_page=False)
    other = context.new_page()  # remembered: a new page of the same browser
    other.goto(csrv.console + "/console/keys")
    assert other.locator("h1").inner_text() == "密钥"
    other.select_option("#lang-select", "en")
    expect(other.locator("html")).to_have_attribute("lang", "en")
    assert other.locator("h1").inner_text() == "Keys"


# ------------------------------------------------------------------------------------------
# the BYOK flow, one per wrapping algorithm
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_byok_flow_in_browser(csrv, page, tmp_path, algorithm):
    signin_user(page, csrv)
    on_keys(page, csrv)
    alias = f"alias/console-byok-{algorithm.lower().replace('_', '-')}"

    # External without the acknowledgement: refused by the page, nothing created
    page.click("#create-key")
    page.fill("#ck-alias", alias)
    page.click("#ck-advanced summary")
    page.check("#ck-origin-external")
    if algorithm == WRAPPING_ALGORITHMS[0]:
        shot(page, "create-key", full_page=False)
    page.click("#ck-confirm")
    assert page.locator("#dlg-create").is_visible()
    assert page.locator("#keys-table tr", has=page.locator(f"text={alias}")).count() == 0
    page.keyboard.press("Escape")

    row = create_key_in_page(page, alias, external=True, description="console BYOK")
    assert row.locator(".badge").inner_text() == "PendingImport"
    assert "EXTERNAL" in row.inner_text()
    assert "Aliyun_AES_256" in row.inner_text()
    assert "SOFTWARE" in row.inner_text()
    key_id = row.get_attribute("data-key-id")

    row.locator("a.alias-link").click()
    page.wait_for_url(f"{csrv.console}/console/keys/{key_id}")
    assert page.locator("h1").inner_text() == alias
    assert key_state(page) == "PendingImport"
    assert page.locator("dd[data-field=KeyId]").inner_text() == key_id
    assert page.locator("dd[data-field=Origin]").inner_text() == "EXTERNAL"
    assert page.locator("dd[data-field=Description]").inner_text() == "console BYOK"
    assert page.locator("#material-status").inner_text() == "Not imported"

    pub, token_file = get_params_in_page(page, tmp_path, algorithm)
    material_file = wrap_with_openssl(tmp_path, pub, algorithm)
    page.evaluate("window.__noReload = 1")
    import_in_page(page, material_file, token_file)
    wait_state(page, "Enabled")
    assert page.evaluate("window.__noReload") == 1  # no page reload
    assert page.locator("#material-status").inner_text() == "Imported"
    assert page.locator("#material-expire").inner_text() == "Never"
    if algorithm == WRAPPING_ALGORITHMS[0]:
        shot(page, "key-page")

    api = ClassicApi(csrv)
    enc = api.call("Encrypt", KeyId=alias, Plaintext=b64(b"from the console"))
    assert enc["KeyId"] == key_id
    assert unb64(api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"])["Plaintext"]) == b"from the console"
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    # delete the material (with confirmation) and import the same material again
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-delete-material")
    wait_state(page, "PendingImport")
    material = (tmp_path / "KeyMaterial.bin").read_bytes()
    pub, token_file = get_params_in_page(page, tmp_path, algorithm)
    material_file = wrap_with_openssl(tmp_path, pub, algorithm, material)
    import_in_page(page, material_file, token_file)
    wait_state(page, "Enabled")
    assert unb64(api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"])["Plaintext"]) == b"from the console"


def test_wrong_token_and_different_material_show_the_server_error(csrv, page, tmp_path):
    signin_ak(page, csrv)
    on_keys(page, csrv)
    api = ClassicApi(csrv)
    other = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    other_token = api.call("GetParametersForImport", KeyId=other, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                           WrappingKeySpec="RSA_2048")["ImportToken"]
    row = create_key_in_page(page, "alias/console-errors", external=True)
    row.locator("a.alias-link").click()
    page.wait_for_url("**/console/keys/*")

    pub, token_file = get_params_in_page(page, tmp_path, "RSAES_OAEP_SHA_256")
    material_file = wrap_with_openssl(tmp_path, pub, "RSAES_OAEP_SHA_256")
    wrong = tmp_path / "WrongToken.txt"
    wrong.write_text(other_token)
    msg = import_in_page(page, material_file, wrong, expect_ok=False)
    assert "InvalidImportToken" in msg, msg
    page.click("#dlg-import [data-close]")
    assert key_state(page) == "PendingImport"

    import_in_page(page, material_file, token_file)
    wait_state(page, "Enabled")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-delete-material")
    wait_state(page, "PendingImport")

    pub, token_file = get_params_in_page(page, tmp_path, "RSAES_OAEP_SHA_256")
    different = wrap_with_openssl(tmp_path, pub, "RSAES_OAEP_SHA_256", os.urandom(32))
    msg = import_in_page(page, different, token_file, expect_ok=False)
    assert "InvalidKeyMaterial" in msg, msg
    shot(page, "import-error", full_page=False)
    page.click("#dlg-import [data-close]")
    assert key_state(page) == "PendingImport"


def test_import_with_material_expiry(csrv, browser, tmp_path):
    """Expiry chosen as a date and time (browser in UTC) becomes MaterialExpireTime."""
    ctx = browser.new_context(accept_downloads=True, timezone_id="UTC")
    page = ctx.new_page()
    try:
        signin_user(page, csrv)
        on_keys(page, csrv)
        row = create_key_in_page(page, "alias/console-expiring", external=True)
        row.locator("a.alias-link").click()
        page.wait_for_url("**/console/keys/*")
        key_id = page.locator("dd[data-field=KeyId]").inner_text()
        pub, token_file = get_params_in_page(page, tmp_path, "RSAES_OAEP_SHA_256")
        material_file = wrap_with_openssl(tmp_path, pub, "RSAES_OAEP_SHA_256")
        page.click("#btn-import")
        page.set_input_files("#im-material", str(material_file))
        page.set_input_files("#im-token", str(token_file))
        page.check("#im-at")
        page.fill("#im-expire", "2099-03-04T05:06")
        page.click("#im-confirm")
        wait_state(page, "Enabled")
        assert page.locator("#material-expire").inner_text() == "2099-03-04T05:06:00Z"
        md = ClassicApi(csrv).call("DescribeKey", KeyId=key_id)["KeyMetadata"]
        assert md["MaterialExpireTime"] == "2099-03-04T05:06:00Z"
        # the description can be changed on the key page
        page.fill("#new-description", "expires in 2099")
        page.click("#description-save")
        expect(page.locator("dd[data-field=Description]")).to_have_text("expires in 2099")
    finally:
        ctx.close()


# ------------------------------------------------------------------------------------------
# key list and key actions
# ------------------------------------------------------------------------------------------
def test_key_actions(csrv, page):
    signin_user(page, csrv)
    on_keys(page, csrv)
    row = create_key_in_page(page, "alias/console-actions", description="actions", rotation_days="30")
    assert row.locator(".badge").inner_text() == "Enabled"
    row.locator("a.alias-link").click()
    page.wait_for_url("**/console/keys/*")
    key_id = page.locator("dd[data-field=KeyId]").inner_text()
    assert page.locator("dd[data-field=AutomaticRotation]").inner_text() == "Enabled"
    assert page.locator("dd[data-field=RotationInterval]").inner_text() == "2592000s"

    # disable (confirmed), enable
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-disable")
    wait_state(page, "Disabled")
    page.click("#btn-enable")
    wait_state(page, "Enabled")
    # a refused confirmation changes nothing
    page.once("dialog", lambda d: d.dismiss())
    page.click("#btn-disable")
    time.sleep(0.3)
    assert key_state(page) == "Enabled"

    # rotation policy off
    page.uncheck("#rot-enable")
    page.click("#rot-save")
    expect(page.locator("dd[data-field=AutomaticRotation]")).to_have_text("Disabled")

    # aliases and tags
    page.fill("#new-alias", "alias/console-second")
    page.click("#alias-add")
    page.locator("#aliases", has_text="alias/console-second").wait_for()
    page.fill("#new-alias", "alias/console-second")
    page.click("#alias-add")
    page.locator("#alias-form .form-error").wait_for()
    assert "AliasAlreadyExists" in page.locator("#alias-form .form-error").inner_text()
    page.once("dialog", lambda d: d.accept())
    page.click("#aliases li:has-text('alias/console-second') button")
    expect(page.locator("#aliases")).not_to_contain_text("alias/console-second")
    page.fill("#tag-key", "team")
    page.fill("#tag-value", "security")
    page.click("#tag-add")
    page.locator("#tags", has_text="security").wait_for()
    api = ClassicApi(csrv)
    tags = api.call("ListResourceTags", KeyId=key_id)["Tags"]["Tag"]
    assert [(t["TagKey"], t["TagValue"]) for t in tags] == [("team", "security")]
    page.once("dialog", lambda d: d.accept())
    page.click("#tags li:has-text('team') button")
    expect(page.locator("#tags")).not_to_contain_text("security")

    # deletion protection: scheduling deletion is then refused by the server
    page.check("#dp-enable")
    page.fill("#dp-description", "production")
    page.click("#dp-save")
    expect(page.locator("dd[data-field=DeletionProtection]")).to_have_text("Enabled")
    assert page.locator("dd[data-field=DeletionProtectionDescription]").inner_text() == "production"
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-schedule-deletion")
    page.locator("form[data-action=ScheduleKeyDeletion] .form-error").wait_for()
    refused = page.locator("form[data-action=ScheduleKeyDeletion] .form-error").inner_text()
    assert "Forbidden" in refused or "Rejected" in refused, refused
    assert key_state(page) == "Enabled"
    page.uncheck("#dp-enable")
    page.click("#dp-save")
    expect(page.locator("dd[data-field=DeletionProtection]")).to_have_text("Disabled")

    # schedule deletion (window in days, confirmed), then cancel
    page.fill("#pending-days", "3")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-schedule-deletion")
    page.locator("form[data-action=ScheduleKeyDeletion] .form-error").wait_for()
    assert "InvalidParameter" in page.locator("form[data-action=ScheduleKeyDeletion] .form-error").inner_text()
    page.fill("#pending-days", "7")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-schedule-deletion")
    wait_state(page, "PendingDeletion")
    assert page.locator("dd[data-field=DeleteDate]").inner_text().endswith("Z")
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    page.click("#btn-cancel-deletion")
    wait_state(page, "Enabled")


def test_key_list_filters_search_and_paging(csrv, page):
    api = ClassicApi(csrv)
    for i in range(22):
        api.call("CreateKey", Description=f"bulk {i}")
    time.sleep(1.1)  # keys are ordered by creation time (seconds)
    ext = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    api.call("CreateAlias", KeyId=ext, AliasName="alias/findme-console")
    signin_ak(page, csrv)
    on_keys(page, csrv)
    assert page.locator("#keys-table tbody tr").count() == 20
    assert page.locator("#keys-table tbody tr").first.get_attribute("data-key-id") == ext  # newest first
    total = api.call("ListKeys", PageSize=1)["TotalCount"]
    assert page.locator("#paging-info").inner_text() == f"Page 1/{(total + 19) // 20} · {total} keys"
    page.click("#page-next")
    page.wait_for_url("**page=2**")
    assert page.locator("#keys-table tbody tr").count() >= 1
    page.goto(csrv.console + "/console/keys")
    page.select_option("#filter-origin", "EXTERNAL")
    page.select_option("#filter-state", "PendingImport")
    page.click("#filter-submit")
    page.wait_for_url("**origin=EXTERNAL**")
    rows = page.locator("#keys-table tbody tr")
    assert rows.count() >= 1
    for i in range(rows.count()):
        assert rows.nth(i).locator(".badge").inner_text() == "PendingImport"
        assert "EXTERNAL" in rows.nth(i).inner_text()
    page.goto(csrv.console + "/console/keys")
    page.fill("#filter-q", "findme")
    page.click("#filter-submit")
    page.wait_for_url("**q=findme**")
    assert page.locator("#keys-table tbody tr").count() == 1
    assert page.locator("#keys-table tbody tr").get_attribute("data-key-id") == ext
    page.fill("#filter-q", ext[:13])
    page.click("#filter-submit")
    page.wait_for_url("**q=**")
    assert page.locator("#keys-table tbody tr").count() == 1
    page.goto(csrv.console + "/console/keys")
    shot(page, "keys", full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shot(page, "keys-phone", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_account_isolation(csrv, page):
    """A second account's access key sees none of the first account's keys."""
    other = csrv.new_account("6543210987654321")
    signin_ak(page, csrv, other["AccessKeyId"], other["AccessKeySecret"])
    on_keys(page, csrv)
    assert page.locator("#keys-table").count() == 0
    key_id = ClassicApi(csrv).call("CreateKey")["KeyMetadata"]["KeyId"]
    r = page.goto(f"{csrv.console}/console/keys/{key_id}")
    assert r.status == 404
    assert "Forbidden.KeyNotFound" in page.locator("#page-error").inner_text()


def test_region_selector(csrv, page):
    key_id = ClassicApi(csrv).call("CreateKey")["KeyMetadata"]["KeyId"]  # in cn-hangzhou
    signin_ak(page, csrv)
    on_keys(page, csrv)
    expect(page.locator("#region-select")).to_have_value("cn-hangzhou")
    expect(page.locator(f"tr[data-key-id='{key_id}']")).to_have_count(1)
    page.select_option("#region-select", "cn-shanghai")
    expect(page.locator("#region-select")).to_have_value("cn-shanghai")
    expect(page.locator(f"tr[data-key-id='{key_id}']")).to_have_count(0)
    row = create_key_in_page(page, "alias/in-shanghai")
    row.locator("a.alias-link").click()
    page.wait_for_url("**/console/keys/*")
    assert ":cn-shanghai:" in page.locator("dd[data-field=Arn]").inner_text()
    r = page.goto(f"{csrv.console}/console/keys/{key_id}")  # a cn-hangzhou key
    assert r.status == 404
    page.goto(csrv.console + "/console/keys")  # remembered across pages
    expect(page.locator("#region-select")).to_have_value("cn-shanghai")
    page.select_option("#region-select", "cn-hangzhou")
    expect(page.locator(f"tr[data-key-id='{key_id}']")).to_have_count(1)


# ------------------------------------------------------------------------------------------
# CSRF and sessions
# ------------------------------------------------------------------------------------------
def test_csrf_is_required(csrv, page):
    signin_ak(page, csrv)
    on_keys(page, csrv)
    key_id = ClassicApi(csrv).call("CreateKey")["KeyMetadata"]["KeyId"]
    url = csrv.console + "/console/api/DisableKey"
    r = page.request.post(url, form={"KeyId": key_id})
    assert r.status == 403
    assert r.json()["Code"] == "Console.InvalidCsrfToken"
    r = page.request.post(url, form={"KeyId": key_id}, headers={"X-CSRF-Token": "forged"})
    assert r.status == 403
    assert ClassicApi(csrv).call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    token = page.locator("body").get_attribute("data-csrf")
    r = page.request.post(url, form={"KeyId": key_id}, headers={"X-CSRF-Token": token})
    assert r.status == 200, r.text()
    assert ClassicApi(csrv).call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    # only the console's actions are offered (no cryptographic calls from the browser)
    r = page.request.post(csrv.console + "/console/api/Encrypt", form={"KeyId": key_id, "Plaintext": "eA=="},
                          headers={"X-CSRF-Token": token})
    assert r.status == 404 and r.json()["Code"] == "InvalidApi.NotFound"
    # a plain HTML form without the token: sign-out refused, session still valid
    r = page.request.post(csrv.console + "/console/signout", form={})
    assert r.status == 403
    page.goto(csrv.console + "/console/keys")
    on_keys(page, csrv)
    # sign-in form without its token
    r = page.request.post(csrv.console + "/console/signin",
                          form={"kind": "ak", "access_key_id": csrv.ak, "access_key_secret": csrv.sk})
    assert r.status == 403


def test_idle_session_expires(kms_binary, tmp_path, browser):
    srv = ConsoleServer(tmp_path, "--console-idle-timeout", "600").start()
    try:
        srv.add_console_user("bob")
        ctx = browser.new_context()
        page = ctx.new_page()
        signin_user(page, srv, name="bob")
        on_keys(page, srv)
        srv.advance_clock(300)
        page.goto(srv.console + "/console/keys")
        on_keys(page, srv)  # still in: 300 s idle < 600 s
        srv.advance_clock(450)
        page.goto(srv.console + "/console/keys")
        on_keys(page, srv)  # 750 s since sign-in, but the previous request reset the idle timer
        srv.advance_clock(601)
        page.goto(srv.console + "/console/keys")
        page.wait_for_url(srv.console + "/console/signin?expired=1")
        assert page.locator("#signin-message").inner_text() == "Your session has ended. Please sign in again."
        token = page.locator("input[name=csrf]").get_attribute("value")
        assert token
        r = page.request.post(srv.console + "/console/api/CreateKey", form={})
        assert r.status == 401
        ctx.close()
    finally:
        srv.stop()


def test_session_lifetime_is_bounded_and_signin_replaces_the_session(kms_binary, tmp_path, browser):
    srv = ConsoleServer(tmp_path, "--console-idle-timeout", "86400").start()
    try:
        ctx = browser.new_context()
        page = ctx.new_page()
        signin_ak(page, srv)
        on_keys(page, srv)
        first = next(c["value"] for c in ctx.cookies() if c["name"] == "kms_session")
        signin_ak(page, srv)  # signing in again replaces the session
        on_keys(page, srv)
        second = next(c["value"] for c in ctx.cookies() if c["name"] == "kms_session")
        assert first != second
        other = browser.new_context()
        other.add_cookies([{"name": "kms_session", "value": first, "url": srv.console + "/console"}])
        p2 = other.new_page()
        p2.goto(srv.console + "/console/keys")
        assert p2.url == srv.console + "/console/signin"  # the old session is gone
        other.close()
        for _ in range(3):
            srv.advance_clock(4 * 3600 - 10)
            page.goto(srv.console + "/console/keys")
            on_keys(page, srv)  # active: never idle for long
        srv.advance_clock(60)  # now over 12 hours since sign-in
        page.goto(srv.console + "/console/keys")
        page.wait_for_url(srv.console + "/console/signin?expired=1")
        ctx.close()
    finally:
        srv.stop()


def test_console_actions_are_audited(csrv, page):
    signin_user(page, csrv)
    on_keys(page, csrv)
    create_key_in_page(page, "alias/console-audited")
    lines = audit_lines(csrv)
    text = "\n".join(json.dumps(line) for line in lines)
    signins = [line for line in lines if line["action"] == "ConsoleSignIn"]
    assert any(line["access_key_id"] == "console-user:alice" and line["result"] == "OK" for line in signins)
    assert any(line["result"] == "Console.InvalidCredentials" for line in signins)
    created = [line for line in lines if line["action"] == "CreateKey" and line["access_key_id"] == "console-user:alice"]
    assert created and created[-1]["result"] == "OK" and created[-1]["account_id"] == csrv.account_id
    assert created[-1]["key_id"] and created[-1]["source"].startswith("127.0.0.1:")
    assert any(line["action"] == "ImportKeyMaterial" and line["result"] == "InvalidImportToken" for line in lines)
    assert PASSWORD not in text and csrv.sk not in text
    subprocess.run([str(kms_bin()), "admin", "audit", "verify", "--data-dir", str(csrv.data_dir)], check=True,
                   capture_output=True)


def test_cookies_are_secure_over_tls(kms_binary, tmp_path):
    import http.client
    import re
    import ssl

    srv = ConsoleServer(tmp_path, "--tls-self-signed")
    srv.scheme = "https"
    srv.start()
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", srv.console_port, timeout=10,
                                           context=ssl._create_unverified_context())
        conn.request("GET", "/console/signin")
        r = conn.getresponse()
        html = r.read().decode()
        assert r.status == 200
        assert r.getheader("Set-Cookie") is None  # the sign-in token is in the form only
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, "kind": "ak", "access_key_id": srv.ak,
                                       "access_key_secret": srv.sk})
        conn.request("POST", "/console/signin", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        assert r.status == 303 and r.getheader("Location") == "/console/keys"
        cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        session = next(c for c in cookies if c.startswith("__Host-kms_session="))
        assert "; Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session
        assert "; Path=/;" in session
    finally:
        srv.stop()


def test_console_user_admin_and_revocation(csrv, browser):
    """`kms admin console-user`: rules, list, delete; deleting a user or disabling an access key
    ends their open sessions at the next request."""
    def admin(*args, password=None):
        env = dict(os.environ)
        env.pop("KMS_CONSOLE_PASSWORD", None)
        return subprocess.run([str(kms_bin()), "admin", *args, "--data-dir", str(csrv.data_dir),
                               *csrv.db_args()],
                              env=env, input=(password or "") + "\n", capture_output=True, text=True)

    r = admin("console-user", "create", "carol", password="short")
    assert r.returncode != 0 and "at least 10 characters" in r.stderr
    r = admin("console-user", "create", "bad name", password=PASSWORD)
    assert r.returncode != 0
    r = admin("console-user", "create", "carol", password=PASSWORD)  # from stdin
    assert r.returncode == 0, r.stderr
    r = admin("console-user", "create", "carol", password=PASSWORD)
    assert r.returncode != 0 and "already exists" in r.stderr
    listed = admin("console-user", "list").stdout
    assert "carol" in listed and csrv.account_id in listed and PASSWORD not in listed

    ctx = browser.new_context()
    page = ctx.new_page()
    signin_user(page, csrv, name="carol")
    on_keys(page, csrv)
    assert admin("console-user", "delete", "carol").returncode == 0
    page.goto(csrv.console + "/console/keys")
    assert page.url == csrv.console + "/console/signin"
    signin_user(page, csrv, name="carol")
    assert page.locator("#signin-message").inner_text() == "The sign-in details are not correct."

    other = csrv.new_account()
    signin_ak(page, csrv, other["AccessKeyId"], other["AccessKeySecret"])
    on_keys(page, csrv)
    assert admin("access-key", "disable", other["AccessKeyId"]).returncode == 0
    deadline = time.time() + 10
    while time.time() < deadline:  # the server re-reads access keys within seconds
        page.goto(csrv.console + "/console/keys")
        if page.url.startswith(csrv.console + "/console/signin"):
            break
        time.sleep(0.5)
    assert page.url == csrv.console + "/console/signin"
    ctx.close()


def test_output_is_escaped(csrv, page):
    evil = '<img src=x onerror="document.title=\'pwned\'">&<b>'
    api = ClassicApi(csrv)
    key_id = api.call("CreateKey", Description=evil)["KeyMetadata"]["KeyId"]
    signin_ak(page, csrv)
    on_keys(page, csrv)
    page.goto(f"{csrv.console}/console/keys/{key_id}")
    assert page.locator("dd[data-field=Description]").inner_text() == evil
    assert page.locator("#new-description").input_value() == evil
    assert page.locator("#main img").count() == 0 and page.locator("#main b").count() == 0
    assert page.title() != "pwned"
    page.goto(csrv.console + "/console/keys?q=" + urllib.parse.quote('"><script>x</script>'))
    assert page.locator("#filter-q").input_value() == '"><script>x</script>'
    assert page.locator("#main script").count() == 0


def _port_pair() -> int:
    """A free port P whose neighbour P+1 is free too."""
    import socket
    for _ in range(50):
        p = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise AssertionError("no free port pair")


def test_console_default_port_and_off(kms_binary, tmp_path):
    """With no console setting the console is on the API port + 1; `--console-listen off` turns it off."""
    import http.client

    def get(port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/console/signin")
        r = conn.getresponse()
        return r.status, r.read().decode()

    port = _port_pair()
    srv = KmsServer(tmp_path / "d1", tmp_path / "l1")
    srv.start(port)
    try:
        status, body = get(port + 1)
        assert status == 200 and 'id="signin-form"' in body
        assert f"Web console on http://127.0.0.1:{port + 1}/console" in srv._log_path().read_text()
    finally:
        srv.stop()
    port = _port_pair()
    srv = KmsServer(tmp_path / "d2", tmp_path / "l2", extra_args=["--console-listen", "off"])
    srv.start(port)
    try:
        with pytest.raises(OSError):
            get(port + 1)
    finally:
        srv.stop()


def test_console_port_taken(kms_binary, tmp_path):
    """An explicit --console-listen that cannot be used stops the server; the default one does not."""
    import socket

    from kms_helpers import ServerStartError

    port = _port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", port + 1))
        busy.listen()
        srv = KmsServer(tmp_path / "d1", tmp_path / "l1", extra_args=["--console-listen", f"127.0.0.1:{port + 1}"])
        with pytest.raises(ServerStartError) as e:
            srv.start(port)
        assert "for the web console" in str(e.value)
        srv = KmsServer(tmp_path / "d2", tmp_path / "l2")
        srv.start(port)  # default console address port + 1 is taken: runs without the console
        try:
            assert "web console not started" in srv._log_path().read_text()
        finally:
            srv.stop()


def _raw_signin(srv, **fields) -> tuple[int, str]:
    """Signs in with a plain HTTP form post (after fetching the sign-in form's token)."""
    import http.client
    import re

    conn = http.client.HTTPConnection("127.0.0.1", srv.console_port, timeout=30)
    try:
        conn.request("GET", "/console/signin")
        r = conn.getresponse()
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.read().decode()).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, **fields})
        conn.request("POST", "/console/signin", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_repeated_failed_signins_are_refused_for_a_while(kms_binary, tmp_path):
    srv = ConsoleServer(tmp_path).start()
    try:
        srv.add_console_user("dave")
        srv.add_console_user("erin")
        for _ in range(5):
            status, _ = _raw_signin(srv, kind="user", user_name="dave", password="wrong password!")
            assert status == 401
        # Now even the right password is refused without being checked, for 15 minutes.
        status, html = _raw_signin(srv, kind="user", user_name="dave", password=PASSWORD)
        assert status == 429 and "Too many failed sign-ins" in html
        # Other users are not affected.
        assert _raw_signin(srv, kind="user", user_name="erin", password=PASSWORD)[0] == 303
        # Access keys too.
        for _ in range(5):
            assert _raw_signin(srv, kind="ak", access_key_id=srv.ak, access_key_secret="nope")[0] == 401
        assert _raw_signin(srv, kind="ak", access_key_id=srv.ak, access_key_secret=srv.sk)[0] == 429
        srv.advance_clock(15 * 60 + 1)
        assert _raw_signin(srv, kind="user", user_name="dave", password=PASSWORD)[0] == 303
        assert _raw_signin(srv, kind="ak", access_key_id=srv.ak, access_key_secret=srv.sk)[0] == 303
        results = [l["result"] for l in audit_lines(srv) if l["action"] == "ConsoleSignIn"]
        assert results.count("Console.TooManyAttempts") == 2
        assert results.count("Console.InvalidCredentials") == 10
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------
# layout at 1366 px, counts, the import dialog's expiry field
# ------------------------------------------------------------------------------------------
# How many lines the text of an element takes (the most of any of its text nodes), whether
# its content is clipped (ends in "…"), its text and its title.
TOKEN_PROBE = """(el) => {
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let node, lines = 0;
  while ((node = walk.nextNode())) {
    if (!node.data.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    lines = Math.max(lines, tops.size);
  }
  return {lines, clipped: el.scrollWidth > el.clientWidth + 1, text: el.innerText.trim(),
          title: el.getAttribute("title")};
}"""


def token_layout(locator) -> list[dict]:
    return [el.evaluate(TOKEN_PROBE) for el in locator.all()]


def assert_whole(items: list[dict], what: str, may_clip: bool = True) -> None:
    """Each token is on one line; a clipped one carries its whole value in its title."""
    assert items, f"no {what} on the page"
    for t in items:
        assert t["lines"] == 1, f"{what} broken across {t['lines']} lines: {t}"
        if t["clipped"]:
            assert may_clip, f"{what} is cut short: {t}"
            assert t["title"] == t["text"], f"{what} clipped without its value in the title: {t}"


def test_token_probe_sees_a_broken_token(csrv, page):
    """The probe of the layout tests counts the lines of a token broken in the middle."""
    page.goto(csrv.console + "/console/signin")
    page.evaluate("""() => { const d = document.createElement('div'); d.id = 'probe';
        d.style.cssText = 'width: 60px; overflow-wrap: anywhere';
        d.textContent = '2026-11-30T23:37:38Z'; document.body.append(d); }""")
    assert page.locator("#probe").evaluate(TOKEN_PROBE)["lines"] > 1


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_key_list_and_key_page_keep_tokens_whole_at_1366(csrv, browser, lang):
    api = ClassicApi(csrv)
    long_alias = "alias/" + "payments-service-production-customer-records-" * 2 + lang.lower()
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    api.call("CreateAlias", KeyId=key_id, AliasName=long_alias)
    api.call("CreateAlias", KeyId=key_id, AliasName=f"alias/short-{lang.lower()}")
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    ctx.add_cookies([{"name": "kms_lang", "value": lang, "url": csrv.console + "/console"}])
    page = ctx.new_page()
    try:
        signin_ak(page, csrv)
        page.wait_for_url(csrv.console + "/console/keys")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        row = page.locator(f"#keys-table tr[data-key-id='{key_id}']")
        assert_whole(token_layout(page.locator("#keys-table a.alias-link")), "alias")
        assert [t["title"] for t in token_layout(row.locator("a.alias-link"))] == \
            [long_alias, f"alias/short-{lang.lower()}"]
        assert_whole(token_layout(page.locator("#keys-table a.key-link")), "key id", may_clip=False)
        created = page.locator("#keys-table td:last-child .tok")
        assert_whole(token_layout(created), "creation date", may_clip=False)
        assert_whole(token_layout(page.locator("#keys-table .badge")), "state", may_clip=False)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        wrap = page.locator(".table-wrap").first
        assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth"), "the key list scrolls sideways"

        row.locator("a.key-link").click()
        page.wait_for_url(f"{csrv.console}/console/keys/{key_id}")
        assert_whole(token_layout(page.locator("h1")), "page title")
        assert page.locator("h1").get_attribute("title") == long_alias
        for field in ("KeyId", "Arn", "CreationDate", "PrimaryKeyVersion", "LastRotationDate",
                      "Creator", "KeySpec", "KeyUsage"):
            dd = page.locator(f"dd[data-field={field}]")
            assert_whole(token_layout(dd), field, may_clip=False)
        assert ":key/" + key_id in page.locator("dd[data-field=Arn]").inner_text()
        assert_whole(token_layout(page.locator("#versions code")), "version id", may_clip=False)
        assert_whole(token_layout(page.locator("#versions td:last-child .tok")), "version date",
                     may_clip=False)
        assert_whole(token_layout(page.locator("#aliases code")), "alias")
    finally:
        ctx.close()


def test_one_key_is_counted_in_the_singular(csrv, page):
    other = csrv.new_account()
    api = ClassicApi(csrv, other["AccessKeyId"], other["AccessKeySecret"])
    api.call("CreateKey")
    signin_ak(page, csrv, other["AccessKeyId"], other["AccessKeySecret"])
    on_keys(page, csrv)
    assert page.locator("#paging-info").inner_text() == "Page 1/1 · 1 key"
    page.select_option("#lang-select", "zh-CN")
    expect(page.locator("#paging-info")).to_have_text("第 1/1 页 · 共 1 个密钥")
    page.select_option("#lang-select", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    api.call("CreateKey")
    page.reload()
    assert page.locator("#paging-info").inner_text() == "Page 1/1 · 2 keys"


def test_import_expiry_date_is_disabled_while_never_is_chosen(csrv, page):
    key_id = ClassicApi(csrv).call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    signin_ak(page, csrv)
    on_keys(page, csrv)
    page.goto(f"{csrv.console}/console/keys/{key_id}")
    page.click("#btn-import")
    expect(page.locator("#im-never")).to_be_checked()
    expect(page.locator("#im-expire")).to_be_disabled()
    page.check("#im-at")
    expect(page.locator("#im-expire")).to_be_enabled()
    page.fill("#im-expire", "2099-03-04T05:06")
    page.check("#im-never")
    expect(page.locator("#im-expire")).to_be_disabled()
    page.check("#im-at")
    page.click("#dlg-import [data-close]")
    page.click("#btn-import")  # opened again: the form starts over with "Never"
    expect(page.locator("#im-never")).to_be_checked()
    expect(page.locator("#im-expire")).to_be_disabled()


def test_key_list_on_a_phone_keeps_tokens_whole_without_scrolling(csrv, browser):
    api = ClassicApi(csrv)
    key_id = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    long_alias = "alias/phone-" + "very-long-alias-name-" * 3 + "end"
    api.call("CreateAlias", KeyId=key_id, AliasName=long_alias)
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    try:
        signin_ak(page, csrv)
        page.wait_for_url(csrv.console + "/console/keys")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        wrap = page.locator(".table-wrap").first
        assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the key list scrolls sideways"
        row = page.locator(f"#keys-table tr[data-key-id='{key_id}']")
        assert_whole(token_layout(row.locator("a.alias-link")), "alias")
        assert row.locator("a.alias-link").get_attribute("title") == long_alias
        assert_whole(token_layout(row.locator("a.key-link")), "key id")
        assert row.locator("a.key-link").get_attribute("title") == key_id
        assert_whole(token_layout(row.locator("td:last-child .tok")), "creation date", may_clip=False)
    finally:
        ctx.close()
