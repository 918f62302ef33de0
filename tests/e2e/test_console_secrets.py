"""Secrets Manager in the web console (issue 18), in headless Chromium like test_console.py:
the secret list, creating a secret in its dialog, the secret page (metadata, versions and
stages), revealing a value on request (audited; never in the page's HTML), putting a new
value, moving a stage, deletion into a recovery window and restore."""
from __future__ import annotations

import json

import pytest

from test_console import ConsoleServer, audit_lines, browser, context, page, signin_ak  # noqa: F401
from test_console import expect as playwright_expect

from kms_helpers import make_api


@pytest.fixture(scope="module")
def ssrv(kms_binary, tmp_path_factory):
    srv = ConsoleServer(tmp_path_factory.mktemp("console-secrets"))
    srv.start()
    yield srv
    srv.stop()


def test_secrets_in_the_console(ssrv, page):  # noqa: F811
    api = make_api("classic", ssrv)
    api.call("CreateSecret", SecretName="from-api", VersionId="v1", SecretData="api value")
    signin_ak(page, ssrv)
    page.wait_for_url(ssrv.console + "/console/keys")
    page.click("#nav-secrets")
    page.wait_for_url(ssrv.console + "/console/secrets")
    assert page.locator("h1").inner_text() == "Secrets"
    assert page.locator("tr[data-secret='from-api']").count() == 1

    # Create a secret in the dialog: its page opens.
    page.click("#create-secret")
    page.fill("#cs-name", "console/db")
    page.fill("#cs-version", "v1")
    page.fill("#cs-value", "first console value")
    page.fill("#cs-desc", "made in the console")
    page.click("#cs-confirm")
    page.wait_for_url("**/console/secret?name=console%2Fdb")
    assert page.locator("#secret-title").inner_text() == "console/db"
    assert page.locator("dd[data-field='Description']").inner_text() == "made in the console"
    assert "first console value" not in page.content()

    # Reveal on request.
    page.click("#btn-reveal")
    value = page.locator("#secret-value")
    playwright_expect(value).to_have_text("first console value")
    page.click("#btn-hide-value")
    assert page.locator("#secret-value").inner_text() == ""

    # A new value, then ACSCurrent moved back to v1.
    page.fill("#put-version", "v2")
    page.fill("#put-value", "second console value")
    page.click("#btn-put-value")
    playwright_expect(page.locator("tr[data-version='v2'] .stages")).to_contain_text("ACSCurrent")
    assert api.call("GetSecretValue", SecretName="console/db")["SecretData"] == "second console value"
    page.fill("#stage-name", "ACSCurrent")
    page.fill("#stage-to", "v1")
    page.click("#btn-move-stage")
    playwright_expect(page.locator("tr[data-version='v1'] .stages")).to_contain_text("ACSCurrent")
    playwright_expect(page.locator("tr[data-version='v2'] .stages")).to_contain_text("ACSPrevious")
    assert api.call("GetSecretValue", SecretName="console/db")["SecretData"] == "first console value"

    # Delete into a recovery window, then restore.
    page.on("dialog", lambda d: d.accept())
    page.fill("#recovery-days", "7")
    page.click("#btn-delete-secret")
    playwright_expect(page.locator("#secret-state")).to_be_visible()
    assert api.call("DescribeSecret", SecretName="console/db")["PlannedDeleteTime"]
    page.click("#btn-restore-secret")
    playwright_expect(page.locator("#btn-delete-secret")).to_be_visible()
    assert api.call("GetSecretValue", SecretName="console/db")["SecretData"] == "first console value"

    # An error from the server is shown.
    page.fill("#put-version", "v1")
    page.fill("#put-value", "a different value")
    page.click("#btn-put-value")
    playwright_expect(page.locator("#put-value-form .form-error")).to_contain_text("InvalidParameter")

    # Unknown secret: a not-found page.
    page.goto(ssrv.console + "/console/secret?name=nope")
    assert "Forbidden.ResourceNotFound" in page.locator("#page-error").inner_text()

    # Every step is audited, naming the secret, never its value.
    lines = audit_lines(ssrv)
    text = "\n".join(json.dumps(line) for line in lines)
    reveals = [line for line in lines if line["action"] == "GetSecretValue"
               and line["access_key_id"].startswith("console")]
    assert reveals and reveals[-1]["key_id"] == "secret/console/db" and reveals[-1]["result"] == "OK"
    for action in ("CreateSecret", "PutSecretValue", "UpdateSecretVersionStage", "DeleteSecret", "RestoreSecret"):
        assert any(line["action"] == action and line["key_id"] == "secret/console/db" for line in lines), action
    for v in ("first console value", "second console value", "a different value"):
        assert v not in text

