"""Web console defences against the attacks of issue 14 (items 5, 8 and 9), tried on real
servers with plain HTTP clients:

- the sign-in limit cannot be raced: concurrent wrong passwords for one user are checked at
  most 5 times, a burst of sign-ins is answered at once instead of queueing password checks,
  and the right password stays refused until the window (test clock) has passed;
- a console session ends when its user is deleted (and created again) or its password is
  changed, on every node (PostgreSQL, two nodes);
- the sign-in form's token is checked by the server (forged, altered, expired, other
  server's, other address's tokens refused; a cookie-set value no longer suffices; a form
  posted from another origin is refused); duplicate session cookies are refused; over HTTPS
  the session cookie is `__Host-kms_session` with Secure and Path=/.

The sign-in helper also sends back the double-submit cookie older servers used, so that run
against a server from before these fixes each test fails on the defence it tests, not on the
sign-in protocol.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import pytest

from kms_helpers import KmsServer, free_port, kms_bin, new_test_database

PASSWORD = "correct-horse-battery-staple"
NEW_PASSWORD = "a-brand-new-password-42"
WRONG = "wrong password!"


class Resp:
    def __init__(self, r: http.client.HTTPResponse):
        self.status = r.status
        self.headers = r.getheaders()
        self.body = r.read().decode(errors="replace")

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def __repr__(self) -> str:
        return f"<{self.status} {self.header('Location') or ''} {self.body[:200]!r}>"


class Console(KmsServer):
    """A KmsServer whose web console listens on its own port, and a plain HTTP client for it."""

    def __init__(self, base: Path, *extra: str, https: bool = False, **kw):
        self.console_port = free_port()
        self.https = https
        args = ["--console-listen", f"127.0.0.1:{self.console_port}", *extra]
        if https:
            args.append("--tls-self-signed")
        super().__init__(base / "data", base / "logs", extra_args=args, **kw)
        if https:
            self.scheme = "https"

    @property
    def session_cookie(self) -> str:
        return "__Host-kms_session" if self.https else "kms_session"

    def admin(self, *args: str, password: Optional[str] = None) -> subprocess.CompletedProcess:
        env = self.admin_env()
        env.pop("KMS_CONSOLE_PASSWORD", None)
        if password is not None:
            env["KMS_CONSOLE_PASSWORD"] = password
        return subprocess.run([str(kms_bin()), "admin", "console-user", *args, "--data-dir",
                               str(self.data_dir), *self.db_args()],
                              env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def add_user(self, name: str, password: str = PASSWORD) -> None:
        r = self.admin("create", name, password=password)
        assert r.returncode == 0, r.stderr

    def request(self, method: str, path: str, body: Optional[dict] = None, cookie: str = "",
                headers: Optional[dict] = None, source: str = "127.0.0.1") -> Resp:
        if self.https:
            conn = http.client.HTTPSConnection("127.0.0.1", self.console_port, timeout=60,
                                               source_address=(source, 0),
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.console_port, timeout=60,
                                              source_address=(source, 0))
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=data, headers=h)
            return Resp(conn.getresponse())
        finally:
            conn.close()

    def signin_form(self, source: str = "127.0.0.1") -> tuple[str, str]:
        """(the form's token, the cookie an older server wanted back with it)."""
        r = self.request("GET", "/console/signin", source=source)
        assert r.status == 200, r
        token = re.search(r'name="csrf" value="([^"]*)"', r.body).group(1)
        old = next((c.split(";")[0] for c in r.cookies() if c.startswith("kms_signin_csrf=")), "")
        return token, old

    def signin(self, form: Optional[tuple[str, str]] = None, source: str = "127.0.0.1",
               headers: Optional[dict] = None, **fields) -> Resp:
        token, old_cookie = form or self.signin_form(source)
        return self.request("POST", "/console/signin", {"csrf": token, **fields}, cookie=old_cookie,
                            headers=headers, source=source)

    def signin_user(self, name: str, password: str = PASSWORD, **kw) -> Resp:
        return self.signin(kind="user", user_name=name, password=password, **kw)

    def session_of(self, r: Resp) -> str:
        """`name=value` of the session cookie a successful sign-in set."""
        assert r.status == 303 and r.header("Location") == "/console/keys", r
        c = next(c for c in r.cookies() if c.startswith(self.session_cookie + "="))
        return c.split(";")[0]

    def page_status(self, cookie: str) -> tuple[int, Optional[str]]:
        r = self.request("GET", "/console/keys", cookie=cookie)
        return r.status, r.header("Location")

    def audit(self) -> list[dict]:
        path = self.data_dir / "audit" / "audit.log"
        time.sleep(0.3)  # refusals are buffered for a moment
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def signin_results(self, principal: Optional[str] = None) -> list[str]:
        return [a["result"] for a in self.audit() if a["action"] == "ConsoleSignIn"
                and (principal is None or a["access_key_id"] == principal)]


@pytest.fixture
def console(kms_binary, tmp_path):
    srv = Console(tmp_path).start()
    yield srv
    srv.stop()


def signed_in(status_location: tuple[int, Optional[str]]) -> bool:
    return status_location[0] == 200


def sent_to_signin(status_location: tuple[int, Optional[str]]) -> bool:
    status, location = status_location
    return status in (302, 303) and (location or "").startswith("/console/signin")


# ------------------------------------------------------------------------------------------
# 5. the sign-in limit cannot be raced
# ------------------------------------------------------------------------------------------
def test_concurrent_wrong_passwords_for_one_user_are_checked_at_most_five_times(console):
    console.add_user("victim")
    form = console.signin_form()
    start = threading.Barrier(60)

    def attempt(_):
        start.wait()
        return console.signin_user("victim", WRONG, form=form).status

    with ThreadPoolExecutor(60) as pool:
        statuses = list(pool.map(attempt, range(60)))
    results = console.signin_results("console-user:victim")
    checked = results.count("Console.InvalidCredentials")
    assert 1 <= checked <= 5, results
    assert statuses.count(401) == checked
    assert statuses.count(429) == 60 - checked, statuses
    assert len(results) == 60
    assert set(results) <= {"Console.InvalidCredentials", "Console.TooManyAttempts", "Rejected.Throttling"}
    # Attempts that found every check slot busy were not counted: wrong passwords one at a time
    # reach the limit of 5 checked in all, and no more.
    for _ in range(6):
        r = console.signin_user("victim", WRONG)
        if r.status == 429:
            assert "Too many failed sign-ins" in r.body
            break
        assert r.status == 401
    assert console.signin_results("console-user:victim").count("Console.InvalidCredentials") == 5
    # Now even the right password is refused, unchecked, until the window has passed.
    r = console.signin_user("victim")
    assert r.status == 429 and "Too many failed sign-ins" in r.body
    console.advance_clock(14 * 60)
    assert console.signin_user("victim").status == 429
    console.advance_clock(60 + 1)
    console.session_of(console.signin_user("victim"))


def test_a_burst_of_sign_ins_is_answered_at_once(console):
    """300 sign-ins for 300 names from 30 addresses (10 each: under every count limit, so only
    the bound on concurrent password checks stands) are all answered quickly; those that find
    every check slot busy get 429 Rejected.Throttling at once instead of queueing."""
    sources = [f"127.0.0.{i}" for i in range(2, 32)]
    forms = {s: console.signin_form(s) for s in sources}
    jobs = [(sources[i % len(sources)], f"burst{i}") for i in range(300)]
    start = threading.Barrier(len(jobs) + 1)

    def attempt(job):
        source, name = job
        start.wait()
        r = console.signin_user(name, WRONG, form=forms[source], source=source)
        return r.status, r.header("Retry-After")

    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(attempt, j) for j in jobs]
        start.wait()
        t0 = time.monotonic()
        answers = [f.result() for f in futures]
        elapsed = time.monotonic() - t0
    statuses = [s for s, _ in answers]
    results = [a["result"] for a in console.audit()
               if a["action"] == "ConsoleSignIn" and a["access_key_id"].startswith("console-user:burst")]
    checked = results.count("Console.InvalidCredentials")
    throttled = results.count("Rejected.Throttling")
    print(f"burst of 300: {elapsed:.2f} s, {checked} checked, {throttled} refused as busy")
    assert checked + throttled == 300, results
    assert statuses.count(401) == checked and statuses.count(429) == throttled
    assert all(retry == "1" for s, retry in answers if s == 429)
    assert throttled >= 200, (checked, throttled)
    assert elapsed < 6, elapsed


# ------------------------------------------------------------------------------------------
# 8. a session ends with its user's credential
# ------------------------------------------------------------------------------------------
def test_a_session_ends_when_its_user_is_deleted_and_created_again(console):
    console.add_user("ops")
    old = console.session_of(console.signin_user("ops"))
    assert signed_in(console.page_status(old))
    r = console.admin("delete", "ops")
    assert r.returncode == 0, r.stderr
    console.add_user("ops", NEW_PASSWORD)
    assert sent_to_signin(console.page_status(old))
    # the old password is gone with the old user; the new one works
    assert console.signin_user("ops").status == 401
    new = console.session_of(console.signin_user("ops", NEW_PASSWORD))
    assert signed_in(console.page_status(new))
    assert sent_to_signin(console.page_status(old))


def test_a_session_ends_when_its_password_is_changed(console):
    console.add_user("ops2")
    other = console.session_of(console.signin_user("ops2"))
    mine = console.session_of(console.signin_user("ops2"))
    assert signed_in(console.page_status(other)) and signed_in(console.page_status(mine))
    r = console.admin("set-password", "ops2", password=NEW_PASSWORD)
    assert r.returncode == 0, r.stderr
    assert "its sessions have ended" in r.stdout
    assert sent_to_signin(console.page_status(other))
    assert sent_to_signin(console.page_status(mine))
    assert console.signin_user("ops2").status == 401
    fresh = console.session_of(console.signin_user("ops2", NEW_PASSWORD))
    assert signed_in(console.page_status(fresh))
    # the user kept its account and is listed once
    listed = console.admin("list").stdout
    assert listed.count("ops2") == 1 and console.account_id in listed
    r = console.admin("set-password", "nobody", password=NEW_PASSWORD)
    assert r.returncode != 0 and "no console user nobody" in r.stderr
    r = console.admin("set-password", "ops2", password="short")
    assert r.returncode != 0 and "at least 10 characters" in r.stderr


@pytest.mark.skipif(not os.environ.get("KMS_TEST_DATABASE_URL"),
                    reason="two nodes need PostgreSQL (KMS_TEST_DATABASE_URL)")
def test_user_changes_end_sessions_on_every_node(kms_binary, tmp_path):
    db = new_test_database()
    root = tmp_path / "root.key"
    root.write_bytes(os.urandom(32))
    root.chmod(0o600)
    nodes = [Console(tmp_path / f"n{i}", database_url=db, ak="LTAIconsolesec000001",
                     sk="console-sec-secret", extra_env={"KMS_ROOT_KEY_FILE": str(root)})
             for i in range(2)]
    for n in nodes:
        n.start()
    try:
        a, b = nodes
        a.add_user("ops")
        # signed in on node A, used on node B
        old = a.session_of(a.signin_user("ops"))
        assert signed_in(b.page_status(old)) and signed_in(a.page_status(old))
        assert b.admin("delete", "ops").returncode == 0
        b.add_user("ops", NEW_PASSWORD)
        assert sent_to_signin(a.page_status(old)) and sent_to_signin(b.page_status(old))
        # signed in on node B with the new password; the password changed from node A's data dir
        s = b.session_of(b.signin_user("ops", NEW_PASSWORD))
        assert signed_in(a.page_status(s))
        r = a.admin("set-password", "ops", password=PASSWORD)
        assert r.returncode == 0, r.stderr
        assert sent_to_signin(b.page_status(s)) and sent_to_signin(a.page_status(s))
        # a sign-in form from node A is accepted by node B (same root key)
        form = a.signin_form()
        b.session_of(b.signin_user("ops", form=form))
    finally:
        for n in nodes:
            n.stop()


# ------------------------------------------------------------------------------------------
# 9. the sign-in token, duplicate session cookies, __Host- over HTTPS
# ------------------------------------------------------------------------------------------
def test_the_sign_in_token_is_checked_by_the_server(console, tmp_path):
    ak = {"kind": "ak", "access_key_id": console.ak, "access_key_secret": console.sk}

    def refused(r: Resp) -> bool:
        return r.status == 403

    # a value of the attacker's choosing, as the double-submit cookie the form used to need
    assert refused(console.request("POST", "/console/signin", {"csrf": "chosen-by-attacker", **ak},
                                   cookie="kms_signin_csrf=chosen-by-attacker"))
    assert refused(console.request("POST", "/console/signin", ak))
    token, _ = console.signin_form()
    # altered
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert refused(console.signin(form=(flipped, ""), **ak))
    assert refused(console.signin(form=(token + "AA", ""), **ak))
    # from another address (127.0.0.2) than the one posting it (127.0.0.1)
    assert refused(console.signin(form=console.signin_form("127.0.0.2"), **ak))
    # from another server (another root key)
    other = Console(tmp_path / "other").start()
    try:
        assert refused(console.signin(form=other.signin_form(), **ak))
    finally:
        other.stop()
    # posted from another origin of this host or another site
    for site in ("cross-site", "same-site"):
        assert refused(console.signin(headers={"Sec-Fetch-Site": site}, **ak))
    results = console.signin_results()
    assert results == ["Console.InvalidCsrfToken"] * len(results) and len(results) == 8
    # the real thing works, with no cookie at all, from the browser's own origin too
    r = console.signin(form=(token, ""), **ak)
    console.session_of(r)
    assert not any(c.startswith("kms_signin_csrf=") for c in r.cookies())
    console.session_of(console.signin(headers={"Sec-Fetch-Site": "same-origin"}, **ak))
    # expired after ten minutes (test clock): the form is shown again with a fresh token
    form = console.signin_form()
    console.advance_clock(10 * 60 - 5)
    console.session_of(console.signin(form=form, **ak))
    console.advance_clock(10)
    r = console.signin(form=form, **ak)
    assert r.status == 403 and "The sign-in form has expired" in r.body
    fresh = re.search(r'name="csrf" value="([^"]*)"', r.body).group(1)
    console.session_of(console.signin(form=(fresh, ""), **ak))


def test_duplicate_session_cookies_are_refused(console):
    console.add_user("dup")
    mine = console.session_of(console.signin_user("dup"))
    value = mine.split("=", 1)[1]
    other = console.session_of(console.signin(kind="ak", access_key_id=console.ak,
                                              access_key_secret=console.sk))
    assert signed_in(console.page_status(mine)) and signed_in(console.page_status(other))
    for cookie in (f"{mine}; {other}", f"{other}; {mine}", f"{mine}; kms_session=planted",
                   f"kms_session=planted; {mine}", f"{mine}; {mine}"):
        status, location = console.page_status(cookie)
        assert status == 303 and location == "/console/signin?dup=1", (cookie, status, location)
        r = console.request("POST", "/console/api/ListKeys", {}, cookie=cookie,
                            headers={"X-CSRF-Token": "x"})
        assert r.status == 401 and json.loads(r.body)["Code"] == "Console.DuplicateSessionCookie", r
    # two Cookie headers count as one list
    conn = http.client.HTTPConnection("127.0.0.1", console.console_port, timeout=10)
    conn.putrequest("GET", "/console/keys")
    conn.putheader("Cookie", mine)
    conn.putheader("Cookie", "kms_session=planted")
    conn.endheaders()
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 303 and r.getheader("Location") == "/console/signin?dup=1"
    page = console.request("GET", "/console/signin?dup=1")
    assert "sent two session cookies" in page.body
    refusals = [a for a in console.audit() if a["result"] == "Console.DuplicateSessionCookie"]
    assert len(refusals) == 11 and all(a["action"] == "ConsoleSession" and a["status"] == 401
                                       for a in refusals)
    assert value not in json.dumps(console.audit())
    # the session itself was not harmed
    assert signed_in(console.page_status(mine))


def test_over_https_the_session_cookie_is_host_prefixed(kms_binary, tmp_path):
    srv = Console(tmp_path, https=True).start()
    try:
        r = srv.signin(kind="ak", access_key_id=srv.ak, access_key_secret=srv.sk)
        assert r.status == 303, r
        set_cookie = next(c for c in r.cookies() if "kms_session=" in c)
        assert set_cookie.startswith("__Host-kms_session="), set_cookie
        attrs = [a.strip() for a in set_cookie.split(";")[1:]]
        assert "Secure" in attrs and "Path=/" in attrs and "HttpOnly" in attrs and "SameSite=Strict" in attrs
        assert not any(a.lower().startswith("domain") for a in attrs)
        cookie = set_cookie.split(";")[0]
        assert signed_in(srv.page_status(cookie))
        # the unprefixed name (which any service on this host could set) is not read over HTTPS
        assert sent_to_signin(srv.page_status(cookie.replace("__Host-kms_session=", "kms_session=")))
        # sign-out clears the prefixed cookie with the same attributes
        page = srv.request("GET", "/console/keys", cookie=cookie)
        csrf = re.search(r'data-csrf="([^"]+)"', page.body).group(1)
        out = srv.request("POST", "/console/signout", {"csrf": csrf}, cookie=cookie)
        cleared = next(c for c in out.cookies() if c.startswith("__Host-kms_session="))
        assert "Max-Age=0" in cleared and "Path=/" in cleared and "Secure" in cleared
        assert sent_to_signin(srv.page_status(cookie))
    finally:
        srv.stop()
