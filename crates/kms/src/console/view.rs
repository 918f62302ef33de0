//! What the page templates share: the signed-in frame and the small view types the
//! templates print. The templates are askama files in `crates/kms/templates/console/`
//! (`layout.html` is the signed-in frame); askama checks them at compile time and escapes
//! every value they print for HTML, so no handler builds HTML by hand.

use askama::Template;

use super::i18n::{Lang, Text, Text as T};
use crate::model::KeyState;

/// What the frame of a signed-in page shows (`layout.html`).
pub struct Frame {
    pub lang: Lang,
    pub csrf: String,
    pub regions: Vec<String>,
    pub region: String,
    pub principal: String,
    pub account: String,
}

impl Frame {
    /// `text` in the page's language (`{{ frame.t(T::Keys) }}` in a template).
    pub fn t(&self, text: Text) -> &'static str {
        self.lang.t(text)
    }
}

/// A key state as a coloured badge (`badge.html`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Badge {
    pub state: KeyState,
}

impl Badge {
    pub fn new(state: KeyState) -> Self {
        Self { state }
    }
    pub fn class(&self) -> &'static str {
        match self.state {
            KeyState::Enabled => "ok",
            KeyState::Disabled => "off",
            KeyState::PendingDeletion => "danger",
            KeyState::PendingImport => "warn",
        }
    }
    pub fn text(&self) -> &'static str {
        self.state.as_str()
    }
}

/// The answer to a form post without a valid CSRF token.
#[derive(Template)]
#[template(path = "console/csrf_refused.html")]
pub struct CsrfRefused {
    pub lang: Lang,
}

/// A page the signed-in RAM user's policies do not allow (403 `Forbidden.NoPermission`).
#[derive(Template)]
#[template(path = "console/forbidden.html")]
pub struct Forbidden {
    pub frame: Frame,
    pub title: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl Forbidden {
    /// The refusal page for `e` (its status, else 403).
    pub fn response(frame: Frame, e: &crate::error::KmsError) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(e.status())
            .unwrap_or(axum::http::StatusCode::FORBIDDEN);
        let page = Forbidden {
            title: frame.t(Text::Forbidden),
            code: e.code(),
            message: e.message(),
            frame,
        };
        super::html(status, &page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges() {
        let classes: Vec<_> = KeyState::ALL.map(|s| Badge::new(s).class()).to_vec();
        assert_eq!(classes, ["ok", "off", "danger", "warn"]);
        assert_eq!(Badge::new(KeyState::PendingImport).text(), "PendingImport");
    }

    #[test]
    fn the_csrf_refusal_escapes_and_translates() {
        let html = CsrfRefused { lang: Lang::Zh }.render().unwrap();
        assert!(html.contains("<html lang=\"zh-CN\">"));
        assert!(html.contains(">登录</a>"));
        assert!(html.contains("id=\"csrf-error\""));
    }
}
