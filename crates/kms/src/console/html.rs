//! HTML output: one escape function (every dynamic value goes through it) and the page
//! frame. No templating crate: the pages are small and written with `format!`/`push_str`.

use super::i18n::{t, Lang};

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a value for a URL path segment or query value.
pub fn url(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// What the frame of a signed-in page shows.
pub struct Frame<'a> {
    pub lang: Lang,
    pub regions: &'a [String],
    pub region: &'a str,
    pub principal: &'a str,
    pub account: &'a str,
    pub csrf: &'a str,
}

fn lang_select(lang: Lang) -> String {
    let opt = |code: &str, label: &str, on: bool| {
        format!(
            "<option value=\"{code}\"{}>{label}</option>",
            if on { " selected" } else { "" }
        )
    };
    format!(
        "<label class=\"lang\">{}<select id=\"lang-select\" data-cookie=\"kms_lang\">{}{}</select></label>",
        esc(t(lang, "language")),
        opt("en", "English", lang == Lang::En),
        opt("zh-CN", "简体中文", lang == Lang::Zh),
    )
}

fn head(lang: Lang, title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · {}</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head>",
        lang.code(),
        esc(title),
        esc(t(lang, "title"))
    )
}

/// A signed-in page: region selector top left, navigation, main content.
pub fn page(f: &Frame<'_>, title: &str, main: &str) -> String {
    let lang = f.lang;
    let mut regions = String::new();
    for r in f.regions {
        regions.push_str(&format!(
            "<option value=\"{0}\"{1}>{0}</option>",
            esc(r),
            if r == f.region { " selected" } else { "" }
        ));
    }
    format!(
        "{head}<body data-csrf=\"{csrf}\" data-error=\"{err}\">\
         <a class=\"skip\" href=\"#main\">{skip}</a>\
         <header class=\"top\">\
           <label class=\"region\">{region_l}<select id=\"region-select\" data-cookie=\"kms_region\">{regions}</select></label>\
           <span class=\"brand\">{brand}</span>\
           <span class=\"who\" title=\"{who_l}\">{principal} · {account_l} {account}</span>\
           {lang_select}\
           <form method=\"post\" action=\"/console/signout\" class=\"signout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">{signout}</button></form>\
         </header>\
         <nav class=\"side\" aria-label=\"{nav}\"><ul><li><a href=\"/console/keys\" aria-current=\"page\">{keys}</a></li></ul></nav>\
         <div id=\"flash\" role=\"alert\" class=\"flash\" hidden></div>\
         <main id=\"main\" tabindex=\"-1\" aria-live=\"polite\">{main}</main></body></html>",
        head = head(lang, title),
        csrf = esc(f.csrf),
        err = esc(t(lang, "error")),
        skip = esc(t(lang, "skip")),
        region_l = esc(t(lang, "region")),
        brand = esc(t(lang, "title")),
        who_l = esc(t(lang, "signed_in_as")),
        principal = esc(f.principal),
        account_l = esc(t(lang, "account")),
        account = esc(f.account),
        lang_select = lang_select(lang),
        signout = esc(t(lang, "signout")),
        nav = esc(t(lang, "nav")),
        keys = esc(t(lang, "keys")),
    )
}

/// The sign-in page.
pub fn signin_page(lang: Lang, csrf: &str, message: Option<(&str, bool)>) -> String {
    let msg = match message {
        Some((m, is_error)) => format!(
            "<p class=\"{}\" role=\"alert\" id=\"signin-message\">{}</p>",
            if is_error { "error" } else { "note" },
            esc(m)
        ),
        None => String::new(),
    };
    let tr = |k| esc(t(lang, k));
    format!(
        "{head}<body class=\"signin-body\"><main id=\"main\" class=\"signin\">\
         <div class=\"signin-top\"><h1>{title}</h1>{lang_select}</div>{msg}\
         <form method=\"post\" action=\"/console/signin\" id=\"signin-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <fieldset class=\"kind\"><legend>{signin}</legend>\
           <label><input type=\"radio\" name=\"kind\" value=\"user\" id=\"kind-user\" checked> {user}</label>\
           <label><input type=\"radio\" name=\"kind\" value=\"ak\" id=\"kind-ak\"> {ak}</label>\
         </fieldset>\
         <div class=\"cred\" data-kind=\"user\">\
           <label for=\"user_name\">{user_name}</label><input id=\"user_name\" name=\"user_name\" autocomplete=\"username\">\
           <label for=\"password\">{password}</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">\
         </div>\
         <div class=\"cred\" data-kind=\"ak\">\
           <label for=\"access_key_id\">{ak_id}</label><input id=\"access_key_id\" name=\"access_key_id\" autocomplete=\"off\">\
           <label for=\"access_key_secret\">{ak_secret}</label><input id=\"access_key_secret\" name=\"access_key_secret\" type=\"password\" autocomplete=\"off\">\
         </div>\
         <button type=\"submit\" id=\"signin-submit\">{signin}</button>\
         </form></main></body></html>",
        head = head(lang, t(lang, "signin")),
        title = tr("title"),
        lang_select = lang_select(lang),
        csrf = esc(csrf),
        signin = tr("signin"),
        user = tr("signin_user"),
        ak = tr("signin_ak"),
        user_name = tr("user_name"),
        password = tr("password"),
        ak_id = tr("ak_id"),
        ak_secret = tr("ak_secret"),
    )
}

/// A state badge.
pub fn badge(state: &str) -> String {
    let class = match state {
        "Enabled" => "ok",
        "Disabled" => "off",
        "PendingDeletion" => "danger",
        "PendingImport" => "warn",
        _ => "off",
    };
    format!(
        "<span class=\"badge {class}\" data-state=\"{0}\">{0}</span>",
        esc(state)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("alias/a b-c"), "alias%2Fa%20b-c");
        assert!(badge("<x>").contains("&lt;x&gt;"));
    }
}
