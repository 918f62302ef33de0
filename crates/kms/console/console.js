// KMS web console: a little vanilla JavaScript on top of server-rendered pages.
// - language and region selectors (remembered in cookies)
// - dialogs (<dialog>), opened by buttons with data-open="<dialog id>"
// - fields with data-enabled-by="<radio id>" are enabled only while that radio is chosen
// - forms with class "act" run one API action through POST /console/api/<Action> with the
//   session's CSRF token; on success the page content is refreshed without a reload (a
//   created key opens its page), on failure the server's code and message are shown, and
//   for an import the checklist and the hints this side can give.
// - sign-in remembers the kind of credential last used (localStorage), unless the server
//   re-rendered a failed attempt (data-kept), which keeps what was tried.
// - the import-parameters dialog shows the openssl commands of the chosen algorithm, with
//   a copy button.
"use strict";

(function () {
  function setCookie(name, value) {
    document.cookie = name + "=" + encodeURIComponent(value) +
      "; Path=/console; Max-Age=31536000; SameSite=Strict" +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t.id === "lang-select") {
      setCookie("kms_lang", t.value);
      location.reload();
    } else if (t.id === "region-select") {
      setCookie("kms_region", t.value);
      location.assign("/console/keys");
    } else if (t.name === "kind" && t.type === "radio") {
      showKind();
    } else if (t.id === "wrap-alg") {
      showCommands();
    }
    if (t.type === "radio") syncEnabled(t.form || document);
  });

  // Fields that only mean something with one choice (the import dialog's expiry date,
  // with "At"): disabled otherwise.
  function syncEnabled(root) {
    root.querySelectorAll("[data-enabled-by]").forEach(function (el) {
      var choice = document.getElementById(el.getAttribute("data-enabled-by"));
      el.disabled = !(choice && choice.checked);
    });
  }

  // sign-in: show the fields of the chosen kind of credential
  function showKind() {
    var checked = document.querySelector("input[name=kind]:checked");
    if (!checked) return;
    document.querySelectorAll(".cred").forEach(function (el) {
      el.hidden = el.getAttribute("data-kind") !== checked.value;
    });
  }
  var KIND_KEY = "kms_signin_kind";
  function restoreKind() {
    var form = document.getElementById("signin-form");
    if (!form || form.hasAttribute("data-kept")) return;
    var last = null;
    try { last = window.localStorage.getItem(KIND_KEY); } catch (e) { /* storage off */ }
    var radio = (last === "ak" || last === "user") && document.getElementById("kind-" + last);
    if (radio) radio.checked = true;
  }
  document.addEventListener("DOMContentLoaded", function () { restoreKind(); showKind(); });
  document.addEventListener("submit", function (ev) {
    if (ev.target.id !== "signin-form") return;
    var checked = ev.target.querySelector("input[name=kind]:checked");
    try { if (checked) window.localStorage.setItem(KIND_KEY, checked.value); } catch (e) { /* storage off */ }
  });

  // import parameters: the openssl commands of the chosen algorithm
  function showCommands() {
    var sel = document.getElementById("wrap-alg");
    if (!sel) return;
    // SM2PKE goes with an EC_SM2 wrapping key, the RSAES_* algorithms with RSA_2048.
    var spec = document.getElementById("wrap-spec");
    if (spec) spec.value = sel.value === "SM2PKE" ? "EC_SM2" : "RSA_2048";
    document.querySelectorAll("pre.cmd[data-alg]").forEach(function (pre) {
      pre.hidden = pre.getAttribute("data-alg") !== sel.value;
    });
    var copy = document.getElementById("copy-cmd");
    if (copy && copy.getAttribute("data-label")) copy.textContent = copy.getAttribute("data-label");
  }

  function copyCommands(button) {
    var pre = document.querySelector("pre.cmd[data-alg]:not([hidden])");
    if (!pre) return;
    var text = pre.textContent;
    var done = function () {
      if (!button.getAttribute("data-label")) button.setAttribute("data-label", button.textContent);
      button.textContent = button.getAttribute("data-copied");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(pre); });
    } else {
      selectText(pre);
      try { if (document.execCommand("copy")) done(); } catch (e) { /* selected: copy by hand */ }
    }
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function resultId0(form) { return form.getAttribute("data-result"); }

  document.addEventListener("click", function (ev) {
    if (ev.target.id === "copy-cmd") { copyCommands(ev.target); return; }
    if (ev.target.id === "btn-hide-value") {
      var v = document.getElementById("secret-value");
      if (v) v.textContent = "";
      var box = document.getElementById("secret-value-box");
      if (box) box.hidden = true;
      return;
    }
    var t = ev.target.closest ? ev.target.closest("[data-open],[data-close]") : null;
    if (!t) return;
    if (t.hasAttribute("data-open")) {
      var d = document.getElementById(t.getAttribute("data-open"));
      if (d && d.showModal) {
        var f = d.querySelector("form");
        if (f) f.reset();
        d.querySelectorAll("details").forEach(function (x) { x.open = false; });
        resetForm(f);
        syncEnabled(d);
        showCommands();
        d.showModal();
      }
    } else {
      var dlg = t.closest("dialog");
      if (dlg) dlg.close();
    }
  });

  function resetForm(form) {
    if (!form) return;
    var err = form.querySelector(".form-error");
    if (err) { err.hidden = true; err.textContent = ""; }
    var res = form.getAttribute("data-result") && document.getElementById(form.getAttribute("data-result"));
    if (res) res.hidden = true;
    form.querySelectorAll("[data-on-error], [data-hint]").forEach(function (el) { el.hidden = true; });
  }

  // An import refused: the checklist, and the hints for what this side can see (the
  // server's one answer stays as it is, so the import is no oracle).
  function showImportHelp(form, code, params) {
    var help = form.querySelector("[data-on-error]");
    if (!help) return;
    var material = params.EncryptedKeyMaterial || "";
    var lines = /[\r\n]/.test(material);
    help.querySelectorAll("[data-hint]").forEach(function (el) {
      var h = el.getAttribute("data-hint");
      el.hidden = !((h === "lines" && lines) || (h === code && !lines));
    });
    help.hidden = false;
  }

  function showError(form, text) {
    var el = form.querySelector(".form-error") || document.getElementById("flash");
    if (!el) { alert(text); return; }
    el.textContent = text;
    el.hidden = false;
    if (el.id === "flash") el.focus && el.focus();
  }

  function call(action, params) {
    var body = new URLSearchParams();
    Object.keys(params).forEach(function (k) { body.append(k, params[k]); });
    return fetch("/console/api/" + encodeURIComponent(action), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-CSRF-Token": document.body.getAttribute("data-csrf") || ""
      },
      body: body.toString()
    }).then(function (r) {
      return r.json().then(function (j) {
        if (r.status === 401) { location.assign("/console/signin?expired=1"); }
        if (!r.ok) {
          var e = new Error((j.Code || r.status) + ": " + (j.Message || ""));
          e.code = j.Code;
          throw e;
        }
        return j;
      });
    });
  }

  function readFile(input) {
    return new Promise(function (resolve, reject) {
      var f = input.files && input.files[0];
      if (!f) { resolve(""); return; }
      var r = new FileReader();
      r.onload = function () { resolve(String(r.result).trim()); };
      r.onerror = function () { reject(new Error("cannot read " + f.name)); };
      r.readAsText(f);
    });
  }

  // The form's fields as API parameters (console-only helpers translated).
  function collect(form, action) {
    var p = {};
    var fd = new FormData(form);
    fd.forEach(function (v, k) {
      if (typeof v === "string" && k.charAt(0) !== "_") p[k] = v;
    });
    form.querySelectorAll("input[type=checkbox][data-unchecked]").forEach(function (c) {
      if (!c.checked) p[c.name] = c.getAttribute("data-unchecked");
    });
    if ("RotationDays" in p) {
      var days = p.RotationDays;
      delete p.RotationDays;
      if (action === "CreateKey") {
        if (days) { p.EnableAutomaticRotation = "true"; p.RotationInterval = days + "d"; }
      } else if (p.EnableAutomaticRotation === "true" && days) {
        p.RotationInterval = days + "d";
      }
    }
    if (action === "TagResource") {
      p.Tags = JSON.stringify([{ TagKey: p.TagKey, TagValue: p.TagValue || "" }]);
      delete p.TagKey; delete p.TagValue;
    } else if (action === "UntagResource") {
      p.TagKeys = JSON.stringify([p.TagKey]);
      delete p.TagKey;
    }
    if (action === "ImportKeyMaterial") {
      var at = form.querySelector("input[name=_expire]:checked");
      if (at && at.value === "at") {
        var when = form.querySelector("input[name=_expire_at]").value;
        var t = when ? Math.floor(new Date(when).getTime() / 1000) : NaN;
        p.KeyMaterialExpireUnix = isNaN(t) ? "invalid" : String(t);
      } else {
        p.KeyMaterialExpireUnix = "0";
      }
    }
    return p;
  }

  // Re-render the main content from the server (no page reload).
  function refresh() {
    return fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      if (r.redirected && r.url.indexOf("/console/signin") >= 0) { location.assign(r.url); return; }
      return r.text().then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) main.innerHTML = fresh.innerHTML;
        var flash = document.getElementById("flash");
        if (flash) flash.hidden = true;
      });
    });
  }

  function textLink(id, name, text) {
    var a = document.getElementById(id);
    if (!a) return;
    var old = a.getAttribute("href");
    if (old && old.indexOf("blob:") === 0) URL.revokeObjectURL(old);
    a.setAttribute("href", URL.createObjectURL(new Blob([text], { type: "text/plain" })));
    a.setAttribute("download", name);
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("act")) return;
    ev.preventDefault();
    var action = form.getAttribute("data-action");
    var confirmText = form.getAttribute("data-confirm");
    if (confirmText && !window.confirm(confirmText)) return;
    var ack = form.querySelector("[data-required-for]");
    if (ack) {
      var choice = document.getElementById(ack.getAttribute("data-required-for"));
      if (choice && choice.checked && !ack.checked) {
        var d = form.querySelector("details");
        if (d) d.open = true;
        ack.setCustomValidity(ack.closest("label").textContent.trim());
        ack.reportValidity();
        ack.setCustomValidity("");
        return;
      }
    }
    resetForm(form);
    var buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach(function (b) { b.disabled = true; });
    var p = collect(form, action);
    var files = Array.prototype.slice.call(form.querySelectorAll("input[type=file][data-file-param]"));
    Promise.all(files.map(readFile)).then(function (texts) {
      files.forEach(function (input, i) { p[input.getAttribute("data-file-param")] = texts[i]; });
      var then = form.querySelector("[data-then]");
      var thenValue = then ? then.value.trim() : "";
      if (then) delete p[then.name];
      return call(action, p).then(function (res) {
        if (then && thenValue) {
          var keyId = res.KeyMetadata ? res.KeyMetadata.KeyId : p.KeyId;
          // the key exists even if the alias is refused: show it, then the error
          return call(then.getAttribute("data-then"), { KeyId: keyId, AliasName: thenValue })
            .then(function () { return res; }, function (e) {
              return refresh().then(function () { throw e; });
            });
        }
        return res;
      });
    }).then(function (res) {
      if (action === "CreateSecret" && res && res.SecretName) {
        location.assign("/console/secret?name=" + encodeURIComponent(res.SecretName));
        return;
      }
      if (action === "GetSecretValue" && resultId0(form)) {
        // Shown on request only (the request is audited); never kept in the page's HTML.
        document.getElementById("secret-value").textContent = res.SecretData;
        document.getElementById(resultId0(form)).hidden = false;
        return;
      }
      if (action === "PutSecretValue" || action === "DeleteSecret" || action === "RestoreSecret") {
        var box = document.getElementById("secret-value");
        if (box) box.textContent = "";
      }
      if (action === "CreateKey" && res && res.KeyMetadata && res.KeyMetadata.KeyId) {
        location.assign("/console/keys/" + encodeURIComponent(res.KeyMetadata.KeyId));
        return;
      }
      var resultId = form.getAttribute("data-result");
      if (action === "GetParametersForImport" && resultId) {
        textLink("dl-public-key", "PublicKey_base64.txt", res.PublicKey);
        textLink("dl-token", "ImportToken.txt", res.ImportToken);
        document.getElementById("token-expire").textContent = res.TokenExpireTime;
        document.getElementById(resultId).hidden = false;
        return;
      }
      var dlg = form.closest("dialog");
      if (dlg) dlg.close();
      return refresh();
    }).catch(function (e) {
      showError(form, (document.body.getAttribute("data-error") || "Error") + " — " + e.message);
      if (action === "ImportKeyMaterial") showImportHelp(form, e.code, p);
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  });
})();
