//! Condition operators (reference §4.3) and the request context they read (§4.4, §5.2).
//!
//! Policy values are parsed once when the document is compiled (CIDRs, instants, numbers,
//! booleans); a policy value that does not parse for its operator makes the document
//! malformed **[inference: the reference only says request values that do not parse make the
//! condition false]**. Request values that do not parse for the operator make the condition
//! false, for negated operators too (§4.3).

use std::collections::BTreeMap;
use std::net::IpAddr;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::pattern::Pattern;

/// The operator's comparison, without its negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
}

impl Operator {
    pub const ALL: &'static [Operator] = &[
        Operator::StringEquals,
        Operator::StringNotEquals,
        Operator::StringEqualsIgnoreCase,
        Operator::StringNotEqualsIgnoreCase,
        Operator::StringLike,
        Operator::StringNotLike,
        Operator::NumericEquals,
        Operator::NumericNotEquals,
        Operator::NumericLessThan,
        Operator::NumericLessThanEquals,
        Operator::NumericGreaterThan,
        Operator::NumericGreaterThanEquals,
        Operator::DateEquals,
        Operator::DateNotEquals,
        Operator::DateLessThan,
        Operator::DateLessThanEquals,
        Operator::DateGreaterThan,
        Operator::DateGreaterThanEquals,
        Operator::Bool,
        Operator::IpAddress,
        Operator::NotIpAddress,
    ];

    /// The name as written in a policy (case-sensitive, §4.1).
    pub const fn name(self) -> &'static str {
        match self {
            Operator::StringEquals => "StringEquals",
            Operator::StringNotEquals => "StringNotEquals",
            Operator::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            Operator::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            Operator::StringLike => "StringLike",
            Operator::StringNotLike => "StringNotLike",
            Operator::NumericEquals => "NumericEquals",
            Operator::NumericNotEquals => "NumericNotEquals",
            Operator::NumericLessThan => "NumericLessThan",
            Operator::NumericLessThanEquals => "NumericLessThanEquals",
            Operator::NumericGreaterThan => "NumericGreaterThan",
            Operator::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            Operator::DateEquals => "DateEquals",
            Operator::DateNotEquals => "DateNotEquals",
            Operator::DateLessThan => "DateLessThan",
            Operator::DateLessThanEquals => "DateLessThanEquals",
            Operator::DateGreaterThan => "DateGreaterThan",
            Operator::DateGreaterThanEquals => "DateGreaterThanEquals",
            Operator::Bool => "Bool",
            Operator::IpAddress => "IpAddress",
            Operator::NotIpAddress => "NotIpAddress",
        }
    }

    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// Negated operators hold when the request value matches none of the policy values, and
    /// when the key is absent from the request (§4.2, [inference, AWS semantics]).
    pub const fn negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
                | Operator::NumericNotEquals
                | Operator::DateNotEquals
                | Operator::NotIpAddress
        )
    }
}

/// Policy values of one (operator, key) pair, parsed for the operator's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// StringEquals/NotEquals: as written. IgnoreCase: lower-cased.
    Strings(Vec<String>),
    Patterns(Vec<Pattern>),
    Numbers(Vec<f64>),
    Dates(Vec<OffsetDateTime>),
    Bools(Vec<bool>),
    Cidrs(Vec<Cidr>),
}

/// One compiled condition: `operator` applied to request key `key` against `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    pub key: String,
    pub values: Values,
}

/// Why a policy value does not parse for its operator (turned into a malformed-document
/// error by the parser, which knows the statement index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue(pub String);

impl Condition {
    /// Compiles the raw values (JSON strings, numbers or booleans, already flattened).
    pub fn compile(operator: Operator, key: &str, raw: &[RawValue]) -> Result<Condition, BadValue> {
        use Operator::*;
        let text = |v: &RawValue| v.text();
        let values = match operator {
            StringEquals | StringNotEquals => Values::Strings(raw.iter().map(text).collect()),
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                Values::Strings(raw.iter().map(|v| text(v).to_lowercase()).collect())
            }
            StringLike | StringNotLike => {
                Values::Patterns(raw.iter().map(|v| Pattern::exact(&text(v))).collect())
            }
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => Values::Numbers(
                raw.iter()
                    .map(|v| parse_number(&text(v)).ok_or_else(|| BadValue(text(v))))
                    .collect::<Result<_, _>>()?,
            ),
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => Values::Dates(
                raw.iter()
                    .map(|v| parse_date(&text(v)).ok_or_else(|| BadValue(text(v))))
                    .collect::<Result<_, _>>()?,
            ),
            Bool => Values::Bools(
                raw.iter()
                    .map(|v| parse_bool(&text(v)).ok_or_else(|| BadValue(text(v))))
                    .collect::<Result<_, _>>()?,
            ),
            IpAddress | NotIpAddress => Values::Cidrs(
                raw.iter()
                    .map(|v| Cidr::parse(&text(v)).ok_or_else(|| BadValue(text(v))))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Condition {
            operator,
            key: key.to_string(),
            values,
        })
    }

    /// Whether the condition holds for the request context.
    pub fn holds(&self, ctx: &Context) -> bool {
        let Some(v) = ctx.get(&self.key) else {
            return self.operator.negated();
        };
        let any = match self.matches_any(v) {
            Some(any) => any,
            None => return false, // request value unparseable for the operator's type
        };
        if self.operator.negated() {
            !any
        } else {
            any
        }
    }

    /// Whether the request value matches some policy value under the positive form of the
    /// operator; `None` if the request value does not parse for its type.
    fn matches_any(&self, v: &ContextValue) -> Option<bool> {
        use Operator::*;
        Some(match (&self.values, self.operator) {
            (Values::Strings(ps), StringEqualsIgnoreCase | StringNotEqualsIgnoreCase) => {
                let v = v.text().to_lowercase();
                ps.contains(&v)
            }
            (Values::Strings(ps), _) => {
                let v = v.text();
                ps.contains(&v)
            }
            (Values::Patterns(ps), _) => {
                let v = v.text();
                ps.iter().any(|p| p.matches(&v))
            }
            (Values::Numbers(ps), op) => {
                let v = parse_number(&v.text())?;
                ps.iter().any(|p| match op {
                    NumericLessThan => v < *p,
                    NumericLessThanEquals => v <= *p,
                    NumericGreaterThan => v > *p,
                    NumericGreaterThanEquals => v >= *p,
                    _ => v == *p,
                })
            }
            (Values::Dates(ps), op) => {
                let v = match v {
                    ContextValue::Time(t) => *t,
                    other => parse_date(&other.text())?,
                };
                ps.iter().any(|p| match op {
                    DateLessThan => v < *p,
                    DateLessThanEquals => v <= *p,
                    DateGreaterThan => v > *p,
                    DateGreaterThanEquals => v >= *p,
                    _ => v == *p,
                })
            }
            (Values::Bools(ps), _) => {
                let v = match v {
                    ContextValue::Bool(b) => *b,
                    other => parse_bool(&other.text())?,
                };
                ps.contains(&v)
            }
            (Values::Cidrs(ps), _) => {
                let v = match v {
                    ContextValue::Ip(ip) => *ip,
                    other => other.text().parse::<IpAddr>().ok()?,
                };
                ps.iter().any(|c| c.contains(v))
            }
        })
    }
}

/// A policy value as written: JSON strings, numbers and booleans all become text here and
/// are parsed for the operator's type by [`Condition::compile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue(pub String);

impl RawValue {
    fn text(&self) -> String {
        self.0.clone()
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// ISO 8601 instants as RFC 3339 (`2019-08-12T17:00:00+08:00`, `2012-11-11T23:59:59Z`, §4.3).
fn parse_date(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// `true`/`false`, any case **[inference for literal forms]**.
fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An address or network, IPv4 or IPv6 (`192.0.2.0/24`, `203.0.113.2`, §4.3). Written by hand
/// (prefix compare on the std types) rather than adding a crate for twenty lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?))
            }
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A value in the request context.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextValue {
    Str(String),
    Ip(IpAddr),
    Bool(bool),
    Time(OffsetDateTime),
}

impl ContextValue {
    fn text(&self) -> String {
        match self {
            ContextValue::Str(s) => s.clone(),
            ContextValue::Ip(ip) => ip.to_string(),
            ContextValue::Bool(b) => b.to_string(),
            ContextValue::Time(t) => t.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// Condition keys of one request (§4.4). Key names are matched exactly (case-sensitive)
/// **[inference: the reference names keys in one spelling and says element and operator
/// names are case-sensitive]**.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    values: BTreeMap<String, ContextValue>,
}

/// Well-known condition keys (§4.4).
pub mod keys {
    pub const SOURCE_IP: &str = "acs:SourceIp";
    pub const SOURCE_VPC: &str = "acs:SourceVpc";
    pub const CURRENT_TIME: &str = "acs:CurrentTime";
    pub const SECURE_TRANSPORT: &str = "acs:SecureTransport";
    pub const MFA_PRESENT: &str = "acs:MFAPresent";
    pub const ENCRYPTION_ALGORITHM: &str = "kms:EncryptionAlgorithm";
    pub const EXTERNAL_ID: &str = "sts:ExternalId";
    /// Prefix of `kms:tag/<TagKey>`.
    pub const KMS_TAG_PREFIX: &str = "kms:tag/";
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    pub fn set(mut self, key: &str, value: ContextValue) -> Context {
        self.values.insert(key.to_string(), value);
        self
    }

    pub fn source_ip(self, ip: IpAddr) -> Context {
        self.set(keys::SOURCE_IP, ContextValue::Ip(ip))
    }

    pub fn secure_transport(self, https: bool) -> Context {
        self.set(keys::SECURE_TRANSPORT, ContextValue::Bool(https))
    }

    pub fn current_time(self, now: OffsetDateTime) -> Context {
        self.set(keys::CURRENT_TIME, ContextValue::Time(now))
    }

    pub fn mfa_present(self, mfa: bool) -> Context {
        self.set(keys::MFA_PRESENT, ContextValue::Bool(mfa))
    }

    pub fn string(self, key: &str, value: &str) -> Context {
        self.set(key, ContextValue::Str(value.to_string()))
    }

    /// `kms:tag/<key>` = `value`, for a tag of the key the request addresses.
    pub fn tag(self, key: &str, value: &str) -> Context {
        let k = format!("{}{key}", keys::KMS_TAG_PREFIX);
        self.string(&k, value)
    }

    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(key)
    }
}
