//! The wire date format: `yyyy-MM-ddTHH:mm:ssZ`, UTC, no fraction.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Formats Unix seconds as `yyyy-MM-ddTHH:mm:ssZ`.
pub fn format_unix(t: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

/// Formats an optional time; `None` is the empty string the wire uses for "not applicable".
pub fn format_opt(t: Option<i64>) -> String {
    t.map(format_unix).unwrap_or_default()
}

/// Parses `yyyy-MM-ddTHH:mm:ssZ` (the SDKs' format) and, more leniently, any RFC 3339 time.
pub fn parse(s: &str) -> Option<i64> {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    if let Ok(p) = PrimitiveDateTime::parse(s, &fmt) {
        return Some(p.assume_utc().unix_timestamp());
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(format_unix(1459134788), "2016-03-28T03:13:08Z");
        assert_eq!(parse("2016-03-28T03:13:08Z"), Some(1459134788));
        assert_eq!(parse("2016-03-28T03:13:08.5+00:00"), Some(1459134788));
        assert_eq!(parse("2016-03-28 03:13:08"), None);
        assert_eq!(format_opt(None), "");
    }
}
