"""Web console as a RAM user (issue 16) in headless Chromium: a RAM user signs in with its
login profile (`<user>@<account>`), and everything it sees and does in the console follows
its policies, exactly as its signed API calls would. One server for the module."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kms_helpers import ClassicApi
from ram_helpers import Tea, policy
from test_console import (CHROMIUM, CHROMIUM_ARGS, ConsoleServer, audit_lines, key_state, on_keys,
                          wait_state)

import playwright.sync_api as playwright_api  # noqa: E402  (tests/requirements.txt)

expect = playwright_api.expect
RAM_PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def srv(kms_binary, tmp_path_factory):
    s = ConsoleServer(tmp_path_factory.mktemp("console-ram"))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ram(srv):
    return Tea("ram", srv, srv.ak, srv.sk)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found", pytrace=False)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15000)
    yield ctx.new_page()
    ctx.close()


def ram_user(ram, name: str, *, password: str = RAM_PASSWORD) -> None:
    ram.call("CreateUser", user_name=name)
    ram.call("CreateLoginProfile", user_name=name, password=password)


def signin(page, srv, name: str, password: str = RAM_PASSWORD) -> None:
    page.goto(srv.console + "/console/signin")
    page.check("#kind-user")
    page.fill("#user_name", name)
    page.fill("#password", password)
    page.click("#signin-submit")


def refused(page, srv, name: str, password: str) -> None:
    signin(page, srv, name, password)
    expect(page.locator("#signin-message")).to_have_text("The sign-in details are not correct.")
    assert page.url.startswith(srv.console + "/console/signin")


def test_a_read_only_ram_user_sees_keys_but_cannot_disable_one(srv, ram, page):
    api = ClassicApi(srv)
    key_id = api.call("CreateKey", Description="ro")["KeyMetadata"]["KeyId"]
    ram_user(ram, "reader")
    ram.call("AttachPolicyToUser", user_name="reader", policy_name="AliyunKMSReadOnlyAccess",
             policy_type="System")

    # the user principal name, in both forms
    signin(page, srv, f"reader@{srv.account_id}.onaliyun.com")
    on_keys(page, srv)
    assert page.locator(f"tr:has-text('{key_id}')").count() == 1
    page.goto(f"{srv.console}/console/keys/{key_id}")
    wait_state(page, "Enabled")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-disable")
    expect(page.locator("#flash")).to_contain_text(
        "Forbidden.NoPermission: This operation is forbidden by permission system.")
    page.reload()
    assert key_state(page) == "Enabled"
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    refusal = [r for r in audit_lines(srv) if r["action"] == "DisableKey"]
    assert refusal and refusal[-1]["result"] == "Forbidden.NoPermission"
    assert refusal[-1]["status"] == 403
    assert refusal[-1]["principal"] == f"acs:ram::{srv.account_id}:user/reader"


def test_ram_sign_in_refusals_are_the_console_refusal(srv, ram, page):
    ram.call("CreateUser", user_name="noprofile")
    refused(page, srv, f"noprofile@{srv.account_id}", RAM_PASSWORD)
    ram_user(ram, "wrongpw")
    refused(page, srv, f"wrongpw@{srv.account_id}", "not the password at all")
    refused(page, srv, "wrongpw@999999", RAM_PASSWORD)   # another account
    refused(page, srv, "nobody@" + srv.account_id, RAM_PASSWORD)
    # the login profile deleted: no more sign-in
    ram_user(ram, "gone")
    ram.call("DeleteLoginProfile", user_name="gone")
    refused(page, srv, f"gone@{srv.account_id}", RAM_PASSWORD)


def test_a_ram_user_without_kms_rights_sees_the_refusal_in_the_page(srv, ram, page):
    ram_user(ram, "nothing")
    signin(page, srv, f"nothing@{srv.account_id}")
    page.wait_for_url(srv.console + "/console/keys")
    expect(page.locator("#page-error")).to_have_text(
        "Forbidden.NoPermission: This operation is forbidden by permission system.")


def test_a_custom_policy_allows_exactly_what_it_says(srv, ram, page):
    api = ClassicApi(srv)
    mine = api.call("CreateKey", Description="mine")["KeyMetadata"]["KeyId"]
    other = api.call("CreateKey", Description="other")["KeyMetadata"]["KeyId"]
    arn = f"acs:kms:*:{srv.account_id}:key/{mine}"
    ram_user(ram, "operator")
    ram.call("CreatePolicy", policy_name="operate-one-key", policy_document=policy(
        {"Effect": "Allow", "Action": ["kms:ListKeys", "kms:ListAliases"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["kms:DescribeKey", "kms:DisableKey", "kms:ListAliasesByKeyId",
                                       "kms:ListKeyVersions", "kms:ListResourceTags"],
         "Resource": arn},
    ))
    ram.call("AttachPolicyToUser", user_name="operator", policy_name="operate-one-key",
             policy_type="Custom")
    signin(page, srv, f"operator@{srv.account_id}")
    on_keys(page, srv)
    page.goto(f"{srv.console}/console/keys/{mine}")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-disable")
    wait_state(page, "Disabled")
    assert api.call("DescribeKey", KeyId=mine)["KeyMetadata"]["KeyState"] == "Disabled"
    # the other key's page is refused
    r = page.goto(f"{srv.console}/console/keys/{other}")
    assert r.status == 403
    expect(page.locator("#page-error")).to_contain_text("Forbidden.NoPermission")


def signin_root(page, srv) -> None:
    page.goto(srv.console + "/console/signin")
    page.check("#kind-ak")
    page.fill("#access_key_id", srv.ak)
    page.fill("#access_key_secret", srv.sk)
    page.click("#signin-submit")
    on_keys(page, srv)


def ram_form(page, op: str, **fields: str) -> str:
    """Fills the RAM page's fields (by id) and submits `op`; the outcome line."""
    for field_id, value in fields.items():
        page.fill(f"#{field_id}", value)
    page.click(op)
    page.wait_for_url("**/console/ram**")
    return page.locator("#ram-outcome").inner_text()


def test_an_admin_manages_ram_in_the_pages_and_the_user_gets_exactly_that(srv, page, browser):
    api = ClassicApi(srv)
    allowed = api.call("CreateKey", Description="allowed")["KeyMetadata"]["KeyId"]
    other = api.call("CreateKey", Description="other")["KeyMetadata"]["KeyId"]
    signin_root(page, srv)
    page.click("#nav-ram")
    page.wait_for_url(srv.console + "/console/ram")

    assert ram_form(page, "#ru-create", **{"ru-name": "dev"}) == "CreateUser: done."
    assert page.locator("#users-table tr[data-user=dev]").count() == 1
    assert ram_form(page, "#ru-profile", **{"ru-name": "dev", "ru-password": RAM_PASSWORD}) \
        == "CreateLoginProfile: done."
    # a malformed document: the server's validation error, with its position; text kept
    bad = '{"Version": "1", "Statement": [{"Effect": "Allow",}]}'
    out = ram_form(page, "#rp-create", **{"rp-name": "dev-one-key", "rp-doc": bad})
    assert out.startswith("MalformedPolicyDocument: policy document is not valid JSON: "), out
    assert "line 1 column" in out, out
    assert page.locator("#rp-doc").input_value() == bad
    assert page.locator("#policies-table tr[data-policy=dev-one-key]").count() == 0
    doc = policy(
        {"Effect": "Allow", "Action": ["kms:ListKeys", "kms:ListAliases"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["kms:DescribeKey", "kms:ListAliasesByKeyId",
                                       "kms:ListKeyVersions", "kms:ListResourceTags",
                                       "kms:DisableKey"],
         "Resource": f"acs:kms:*:{srv.account_id}:key/{allowed}"},
    )
    assert ram_form(page, "#rp-create", **{"rp-name": "dev-one-key", "rp-doc": doc}) \
        == "CreatePolicy: done."
    assert page.locator("#policies-table tr[data-policy=dev-one-key]").count() == 1
    # edit: the default version loads into the editor
    page.locator("#policies-table tr[data-policy=dev-one-key] a").click()
    assert '"kms:DisableKey"' in page.locator("#rp-doc").input_value()
    assert page.locator("#rp-name").input_value() == "dev-one-key"
    page.select_option("#ra-type", "Custom")
    assert ram_form(page, "#ra-attach-user", **{"ra-policy": "dev-one-key", "ra-user": "dev"}) \
        == "AttachPolicyToUser: done."
    # an access key: the secret shown once
    assert ram_form(page, "#ru-ak", **{"ru-name": "dev"}) == "CreateAccessKey: done."
    ak_id = page.locator("#new-ak-id").inner_text()
    assert ak_id.startswith("LTAI") and len(page.locator("#new-ak-secret").inner_text()) >= 30
    page.goto(srv.console + "/console/ram")
    assert page.locator("#new-ak-secret").count() == 0
    # groups and roles
    assert ram_form(page, "#rg-create", **{"rg-name": "ops"}) == "CreateGroup: done."
    assert ram_form(page, "#rg-add", **{"rg-name": "ops", "rg-user": "dev"}) == "AddUserToGroup: done."
    trust = policy({"Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"RAM": [f"acs:ram::{srv.account_id}:root"]}})
    assert ram_form(page, "#rr-create", **{"rr-name": "app", "rr-trust": trust}) == "CreateRole: done."
    assert page.locator("#roles-table tr[data-role=app]").count() == 1

    # the user signs in and may do exactly what the policy says
    ctx = browser.new_context()
    ctx.set_default_timeout(15000)
    try:
        dev = ctx.new_page()
        signin(dev, srv, f"dev@{srv.account_id}")
        on_keys(dev, srv)
        dev.goto(f"{srv.console}/console/keys/{allowed}")
        dev.once("dialog", lambda d: d.accept())
        dev.click("#btn-disable")
        wait_state(dev, "Disabled")
        # EnableKey is not in the policy
        dev.click("#btn-enable")
        expect(dev.locator("#flash")).to_contain_text("Forbidden.NoPermission")
        assert api.call("DescribeKey", KeyId=allowed)["KeyMetadata"]["KeyState"] == "Disabled"
        assert dev.goto(f"{srv.console}/console/keys/{other}").status == 403
        # no ram:* rights: every RAM list and change is refused in the page
        dev.goto(f"{srv.console}/console/ram")
        expect(dev.locator("#users-refused")).to_contain_text("NoPermission")
        out = ram_form(dev, "#ru-create", **{"ru-name": "intruder"})
        assert out.startswith("NoPermission: "), out
    finally:
        ctx.close()
    assert "intruder" not in json.dumps(ram_users(srv))


def ram_users(srv) -> list:
    return Tea("ram", srv, srv.ak, srv.sk).call("ListUsers")["Users"]["User"]


def test_ram_forms_need_the_csrf_token(srv, page):
    signin_root(page, srv)
    r = page.request.post(srv.console + "/console/ram",
                          form={"op": "CreateUser", "UserName": "forged", "csrf": "nope"})
    assert r.status == 403
    assert all(u["UserName"] != "forged" for u in ram_users(srv))


def test_ram_sign_in_attempts_are_limited_across_both_name_forms(srv, ram, page):
    ram_user(ram, "guarded")
    for i in range(5):
        name = f"guarded@{srv.account_id}" + (".onaliyun.com" if i % 2 else "")
        refused(page, srv, name, f"wrong password {i}")
    signin(page, srv, f"guarded@{srv.account_id}.onaliyun.com")
    expect(page.locator("#signin-message")).to_have_text(
        "Too many failed sign-ins. Try again in 15 minutes.")


def test_a_ram_users_sessions_end_when_its_password_changes(srv, ram, page):
    ram_user(ram, "rotated")
    ram.call("AttachPolicyToUser", user_name="rotated", policy_name="AliyunKMSReadOnlyAccess",
             policy_type="System")
    signin(page, srv, f"rotated@{srv.account_id}")
    on_keys(page, srv)
    ram.call("UpdateLoginProfile", user_name="rotated", password="another good password")
    page.goto(srv.console + "/console/keys")
    page.wait_for_url("**/console/signin**")


# --- the key page's secondary reads follow the policy too (wave6/ramperf) -------------------

def test_the_key_pages_secondary_reads_follow_the_policy(srv, ram, page):
    """Versions, aliases and tags are shown only to a user whose policy allows
    ListKeyVersions, ListAliasesByKeyId and ListResourceTags on the key, as the API would;
    DescribeKey alone shows the key's metadata and nothing else."""
    api = ClassicApi(srv)
    key_id = api.call("CreateKey", Description="secondary")["KeyMetadata"]["KeyId"]
    api.call("CreateAlias", KeyId=key_id, AliasName="alias/secondary-reads")
    api.call("TagResource", KeyId=key_id,
             Tags=json.dumps([{"TagKey": "team", "TagValue": "apollo"}]))
    arn = f"acs:kms:*:{srv.account_id}:key/{key_id}"
    ram_user(ram, "describer")
    ram.call("CreatePolicy", policy_name="describe-only", policy_document=policy(
        {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": arn}))
    ram.call("AttachPolicyToUser", user_name="describer", policy_name="describe-only",
             policy_type="Custom")
    signin(page, srv, f"describer@{srv.account_id}")
    page.wait_for_url(srv.console + "/console/keys")
    r = page.goto(f"{srv.console}/console/keys/{key_id}")
    assert r.status == 200
    wait_state(page, "Enabled")
    assert key_id in page.locator("main").inner_text()
    assert page.locator("#versions tbody tr").count() == 0
    assert page.locator("#aliases code").count() == 0
    assert page.locator("#tags code").count() == 0
    assert "alias/secondary-reads" not in page.content()
    assert "apollo" not in page.content()
    # the change controls shown do not work: the API refuses them, nothing changes
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-disable")
    expect(page.locator("#flash")).to_contain_text("Forbidden.NoPermission")
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    # with the three reads allowed, the page shows them
    ram.call("CreatePolicy", policy_name="read-the-rest", policy_document=policy(
        {"Effect": "Allow", "Action": ["kms:ListKeyVersions", "kms:ListAliasesByKeyId",
                                       "kms:ListResourceTags"], "Resource": arn}))
    ram.call("AttachPolicyToUser", user_name="describer", policy_name="read-the-rest",
             policy_type="Custom")
    page.goto(f"{srv.console}/console/keys/{key_id}")
    wait_state(page, "Enabled")
    assert page.locator("#versions tbody tr").count() == 1
    expect(page.locator("#aliases")).to_contain_text("alias/secondary-reads")
    expect(page.locator("#tags")).to_contain_text("apollo")


def test_the_read_only_policy_reads_the_whole_key_page_but_changes_nothing(srv, ram, page):
    api = ClassicApi(srv)
    key_id = api.call("CreateKey", Description="ro-page")["KeyMetadata"]["KeyId"]
    api.call("CreateAlias", KeyId=key_id, AliasName="alias/ro-page")
    api.call("TagResource", KeyId=key_id,
             Tags=json.dumps([{"TagKey": "team", "TagValue": "gemini"}]))
    ram_user(ram, "ro-page")
    ram.call("AttachPolicyToUser", user_name="ro-page", policy_name="AliyunKMSReadOnlyAccess",
             policy_type="System")
    signin(page, srv, f"ro-page@{srv.account_id}")
    page.wait_for_url(srv.console + "/console/keys")
    page.goto(f"{srv.console}/console/keys/{key_id}")
    wait_state(page, "Enabled")
    assert page.locator("#versions tbody tr").count() == 1
    expect(page.locator("#aliases")).to_contain_text("alias/ro-page")
    expect(page.locator("#tags")).to_contain_text("gemini")
    page.once("dialog", lambda d: d.accept())
    page.click("#btn-disable")
    expect(page.locator("#flash")).to_contain_text("Forbidden.NoPermission")
    assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


# --- post/redirect/get on the RAM page (wave6/ramperf) --------------------------------------

def test_a_ram_form_redirects_after_a_change_so_a_reload_does_not_repeat_it(srv, page):
    signin_root(page, srv)
    page.goto(srv.console + "/console/ram")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    assert ram_form(page, "#ru-create", **{"ru-name": "prg-user"}) == "CreateUser: done."
    assert page.url == srv.console + "/console/ram?done=CreateUser"
    assert len(posts) == 1
    r = page.reload()
    assert r.status == 200 and r.request.method == "GET"
    assert len(posts) == 1
    assert page.locator("#ram-outcome").inner_text() == "CreateUser: done."
    assert page.locator("#users-table tr[data-user=prg-user]").count() == 1
    # a refused change is answered in place (400, the form kept), not redirected
    out = ram_form(page, "#ru-create", **{"ru-name": "prg-user"})
    assert out.startswith("EntityAlreadyExists.User"), out
    assert page.url == srv.console + "/console/ram"
    # only an action of the page is named back
    page.goto(srv.console + "/console/ram?done=DeleteUser<b>")
    assert page.locator("#ram-outcome").count() == 0
