

def test_console_user_admin_and_revocation(csrv, browser):
    """`kms admin console-user`: rules, list, delete; deleting a user or disabling an access key
    ends their open sessions at the next request."""
    def admin(*args, password=None):
        env = dict(os.environ)
        env.pop("KMS_CONSOLE_PASSWORD", None)
        return subprocess.run([str(kms_bin()), "admin", *args, "--data-dir", str(csrv.data_dir)],
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
    api.call("TagResource", KeyId=key_id, Tags=json.dumps([{"TagKey": "<k>", "TagValue": evil}]))
    signin_ak(page, csrv)
    on_keys(page, csrv)
    page.goto(f"{csrv.console}/console/keys/{key_id}")
    assert page.locator("dd[data-field=Description]").inner_text() == evil
    assert evil in page.locator("#tags").inner_text()
    assert page.locator("#main img").count() == 0 and page.locator("#main b").count() == 0
    assert page.title() != "pwned"
    page.goto(csrv.console + "/console/keys?q=" + urllib.parse.quote('"><script>x</script>'))
    assert page.locator("#filter-q").input_value() == '"><script>x</script>'
    assert page.locator("#main script").count() == 0
