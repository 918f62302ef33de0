//! Parsing, validating and compiling a policy document (reference §4.1, limits §3.10).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::condition::{Condition, Operator, RawValue};
use super::pattern::Pattern;

/// What a document is for: it decides which elements are required and which error codes and
/// length limit apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A custom or system policy attached to users, groups and roles (`CreatePolicy`).
    Identity,
    /// The `Policy` parameter of STS `AssumeRole`: can only narrow the role's policies.
    Session,
    /// A role's `AssumeRolePolicyDocument` (§4.7): `Principal` instead of `Resource`.
    Trust,
}

impl PolicyKind {
    /// Maximum document length in characters: 6144 for custom policies, 2048 for session
    /// policies (§3.10); trust policies: 6144 **[inference: no documented limit]**.
    pub const fn max_chars(self) -> usize {
        match self {
            PolicyKind::Identity | PolicyKind::Trust => 6144,
            PolicyKind::Session => 2048,
        }
    }
}

/// Why a document was refused. [`PolicyError::code`] is the RAM/STS error code; `Display`
/// gives the reason (statement index and field) for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Longer than [`PolicyKind::max_chars`].
    TooLong { kind: PolicyKind, chars: usize },
    /// Fails the grammar.
    Malformed { kind: PolicyKind, reason: Malformed },
}

impl PolicyError {
    /// The error code of §3.9 for the document's kind.
    pub const fn code(&self) -> &'static str {
        match self {
            PolicyError::TooLong { kind, .. } => match kind {
                PolicyKind::Identity => "InvalidParameter.PolicyDocument.Length",
                PolicyKind::Session => "InvalidParameter.PolicySize",
                PolicyKind::Trust => "InvalidParameter.AssumeRolePolicyDocument.Length",
            },
            PolicyError::Malformed { kind, .. } => match kind {
                PolicyKind::Session => "InvalidParameter.PolicyGrammar",
                _ => "MalformedPolicyDocument",
            },
        }
    }

    /// The wire message of §3.9: RAM's `MalformedPolicyDocument` carries the reason; STS's
    /// grammar and size errors and RAM's length errors have fixed texts.
    pub fn message(&self) -> String {
        match self {
            PolicyError::TooLong { kind, .. } => match kind {
                PolicyKind::Identity => {
                    "The parameter - \"PolicyDocument\" beyond the length limit.".to_string()
                }
                PolicyKind::Session => {
                    "The size of Policy must be smaller than 1024 bytes.".to_string()
                }
                PolicyKind::Trust => {
                    "The parameter - \"AssumeRolePolicyDocument\" beyond the length limit."
                        .to_string()
                }
            },
            PolicyError::Malformed {
                kind: PolicyKind::Session,
                ..
            } => "The parameter Policy has not passed grammar check.".to_string(),
            PolicyError::Malformed { reason, .. } => reason.to_string(),
        }
    }

    /// The reason, when malformed.
    pub fn reason(&self) -> Option<&Malformed> {
        match self {
            PolicyError::Malformed { reason, .. } => Some(reason),
            PolicyError::TooLong { .. } => None,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::TooLong { kind, chars } => write!(
                f,
                "policy document is {chars} characters, more than the limit of {}",
                kind.max_chars()
            ),
            PolicyError::Malformed { reason, .. } => reason.fmt(f),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The specific grammar violation. `statement` is the 0-based index in `Statement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    InvalidJson(String),
    NotAnObject,
    UnknownTopLevelKey(String),
    MissingVersion,
    UnsupportedVersion(String),
    MissingStatement,
    EmptyStatement,
    StatementNotObject {
        statement: usize,
    },
    UnknownStatementKey {
        statement: usize,
        key: String,
    },
    /// `Sid` present but not a string.
    BadSid {
        statement: usize,
    },
    MissingEffect {
        statement: usize,
    },
    BadEffect {
        statement: usize,
        value: String,
    },
    ActionAndNotAction {
        statement: usize,
    },
    MissingAction {
        statement: usize,
    },
    /// A field that takes a string or an array of strings holds something else.
    NotStringOrArray {
        statement: usize,
        field: &'static str,
    },
    EmptyArray {
        statement: usize,
        field: &'static str,
    },
    /// An action that is neither `*` nor `<service>:<name>`.
    BadAction {
        statement: usize,
        value: String,
    },
    /// `NotResource` is not in Alibaba's grammar (§4.1).
    NotResource {
        statement: usize,
    },
    MissingResource {
        statement: usize,
    },
    /// `Resource` in a trust policy (its resource is the role itself).
    ResourceInTrust {
        statement: usize,
    },
    MissingPrincipal {
        statement: usize,
    },
    /// `Principal` outside a trust policy.
    UnexpectedPrincipal {
        statement: usize,
    },
    BadPrincipal {
        statement: usize,
        detail: String,
    },
    ConditionNotObject {
        statement: usize,
    },
    UnknownOperator {
        statement: usize,
        operator: String,
    },
    OperatorNotObject {
        statement: usize,
        operator: String,
    },
    BadConditionValue {
        statement: usize,
        operator: String,
        key: String,
        value: String,
    },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Malformed::*;
        match self {
            InvalidJson(e) => write!(f, "policy document is not valid JSON: {e}"),
            NotAnObject => f.write_str("policy document must be a JSON object"),
            UnknownTopLevelKey(k) => write!(f, "unknown element \"{k}\" in policy document"),
            MissingVersion => f.write_str("\"Version\" is missing"),
            UnsupportedVersion(v) => write!(f, "\"Version\" must be \"1\", not {v}"),
            MissingStatement => f.write_str("\"Statement\" is missing"),
            EmptyStatement => f.write_str("\"Statement\" is empty"),
            StatementNotObject { statement } => {
                write!(f, "Statement[{statement}] must be a JSON object")
            }
            UnknownStatementKey { statement, key } => {
                write!(f, "Statement[{statement}]: unknown element \"{key}\"")
            }
            BadSid { statement } => write!(f, "Statement[{statement}].Sid must be a string"),
            MissingEffect { statement } => write!(f, "Statement[{statement}].Effect is missing"),
            BadEffect { statement, value } => write!(
                f,
                "Statement[{statement}].Effect must be \"Allow\" or \"Deny\", not {value}"
            ),
            ActionAndNotAction { statement } => write!(
                f,
                "Statement[{statement}] has both \"Action\" and \"NotAction\"; give exactly one"
            ),
            MissingAction { statement } => write!(
                f,
                "Statement[{statement}] has neither \"Action\" nor \"NotAction\"; give exactly one"
            ),
            NotStringOrArray { statement, field } => write!(
                f,
                "Statement[{statement}].{field} must be a string or an array of strings"
            ),
            EmptyArray { statement, field } => {
                write!(f, "Statement[{statement}].{field} is an empty array")
            }
            BadAction { statement, value } => write!(
                f,
                "Statement[{statement}]: action \"{value}\" is not \"*\" or \"<service>:<action>\""
            ),
            NotResource { statement } => write!(
                f,
                "Statement[{statement}]: \"NotResource\" is not supported; use \"Resource\""
            ),
            MissingResource { statement } => {
                write!(f, "Statement[{statement}].Resource is missing")
            }
            ResourceInTrust { statement } => write!(
                f,
                "Statement[{statement}]: a trust policy has no \"Resource\" (the role is the resource)"
            ),
            MissingPrincipal { statement } => {
                write!(f, "Statement[{statement}].Principal is missing")
            }
            UnexpectedPrincipal { statement } => write!(
                f,
                "Statement[{statement}]: \"Principal\" is only allowed in a trust policy"
            ),
            BadPrincipal { statement, detail } => {
                write!(f, "Statement[{statement}].Principal: {detail}")
            }
            ConditionNotObject { statement } => {
                write!(f, "Statement[{statement}].Condition must be a JSON object")
            }
            UnknownOperator { statement, operator } => write!(
                f,
                "Statement[{statement}].Condition: unknown operator \"{operator}\""
            ),
            OperatorNotObject { statement, operator } => write!(
                f,
                "Statement[{statement}].Condition.{operator} must map condition keys to values"
            ),
            BadConditionValue {
                statement,
                operator,
                key,
                value,
            } => write!(
                f,
                "Statement[{statement}].Condition.{operator}.{key}: value {value} is not valid for the operator"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Which principals a trust statement names (§4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalKind {
    Ram,
    Service,
    Federated,
}

impl PrincipalKind {
    const fn name(self) -> &'static str {
        match self {
            PrincipalKind::Ram => "RAM",
            PrincipalKind::Service => "Service",
            PrincipalKind::Federated => "Federated",
        }
    }
}

/// A compiled statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `true` for `NotAction`.
    pub not_action: bool,
    /// Lower-cased patterns (actions are case-insensitive).
    pub actions: Vec<Pattern>,
    /// Empty in a trust policy.
    pub resources: Vec<Pattern>,
    /// Empty outside a trust policy.
    pub principals: Vec<(PrincipalKind, Pattern)>,
    pub conditions: Vec<Condition>,
}

/// A parsed, validated and compiled policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Parses and compiles `text` as a document of `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let chars = text.chars().count();
        if chars > kind.max_chars() {
            return Err(PolicyError::TooLong { kind, chars });
        }
        let Strict(value) = serde_json::from_str(text).map_err(|e| PolicyError::Malformed {
            kind,
            reason: Malformed::InvalidJson(e.to_string()),
        })?;
        compile(&value, kind).map_err(|reason| PolicyError::Malformed { kind, reason })
    }
}

fn compile(value: &Value, kind: PolicyKind) -> Result<Policy, Malformed> {
    let obj = value.as_object().ok_or(Malformed::NotAnObject)?;
    if let Some(k) = obj.keys().find(|k| *k != "Version" && *k != "Statement") {
        return Err(Malformed::UnknownTopLevelKey(k.clone()));
    }
    match obj.get("Version") {
        None => return Err(Malformed::MissingVersion),
        Some(Value::String(v)) if v == "1" => {}
        Some(v) => return Err(Malformed::UnsupportedVersion(v.to_string())),
    }
    let list: Vec<&Value> = match obj.get("Statement") {
        None | Some(Value::Null) => return Err(Malformed::MissingStatement),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one], // single object accepted [inference]
        Some(_) => return Err(Malformed::StatementNotObject { statement: 0 }),
    };
    if list.is_empty() {
        return Err(Malformed::EmptyStatement);
    }
    let statements = list
        .iter()
        .enumerate()
        .map(|(i, s)| statement(i, s, kind))
        .collect::<Result<_, _>>()?;
    Ok(Policy { kind, statements })
}

const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "Condition",
];

fn statement(i: usize, value: &Value, kind: PolicyKind) -> Result<Statement, Malformed> {
    let obj = value
        .as_object()
        .ok_or(Malformed::StatementNotObject { statement: i })?;
    if let Some(k) = obj.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(Malformed::UnknownStatementKey {
            statement: i,
            key: k.clone(),
        });
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Malformed::BadSid { statement: i }),
    };
    let effect = match obj.get("Effect") {
        None => return Err(Malformed::MissingEffect { statement: i }),
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(v) => {
            return Err(Malformed::BadEffect {
                statement: i,
                value: v.to_string(),
            });
        }
    };
    let (not_action, raw_actions) = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(_), Some(_)) => return Err(Malformed::ActionAndNotAction { statement: i }),
        (None, None) => return Err(Malformed::MissingAction { statement: i }),
        (Some(a), None) => (false, strings(i, "Action", a)?),
        (None, Some(a)) => (true, strings(i, "NotAction", a)?),
    };
    let mut actions = Vec::with_capacity(raw_actions.len());
    for a in &raw_actions {
        let valid = a == "*"
            || a.split_once(':')
                .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty());
        if !valid {
            return Err(Malformed::BadAction {
                statement: i,
                value: a.clone(),
            });
        }
        actions.push(Pattern::folded(a));
    }
    if obj.contains_key("NotResource") {
        return Err(Malformed::NotResource { statement: i });
    }
    let resources = match (kind, obj.get("Resource")) {
        (PolicyKind::Trust, Some(_)) => return Err(Malformed::ResourceInTrust { statement: i }),
        (PolicyKind::Trust, None) => Vec::new(),
        (_, None) => return Err(Malformed::MissingResource { statement: i }),
        (_, Some(r)) => strings(i, "Resource", r)?
            .iter()
            .map(|r| Pattern::exact(r))
            .collect(),
    };
    let principals = match (kind, obj.get("Principal")) {
        (PolicyKind::Trust, None) => return Err(Malformed::MissingPrincipal { statement: i }),
        (PolicyKind::Trust, Some(p)) => principals(i, p)?,
        (_, Some(_)) => return Err(Malformed::UnexpectedPrincipal { statement: i }),
        (_, None) => Vec::new(),
    };
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(c)) => conditions(i, c)?,
        Some(_) => return Err(Malformed::ConditionNotObject { statement: i }),
    };
    Ok(Statement {
        sid,
        effect,
        not_action,
        actions,
        resources,
        principals,
        conditions,
    })
}

/// A string or a non-empty array of strings (§4.1: a single value and a one-element array
/// are equivalent).
fn strings(i: usize, field: &'static str, v: &Value) -> Result<Vec<String>, Malformed> {
    let bad = Malformed::NotStringOrArray {
        statement: i,
        field,
    };
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if a.is_empty() => Err(Malformed::EmptyArray {
            statement: i,
            field,
        }),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or(bad.clone()))
            .collect(),
        _ => Err(bad),
    }
}

fn principals(i: usize, v: &Value) -> Result<Vec<(PrincipalKind, Pattern)>, Malformed> {
    let bad = |detail: String| Malformed::BadPrincipal {
        statement: i,
        detail,
    };
    let obj = v
        .as_object()
        .ok_or_else(|| bad("must be an object such as {\"RAM\": [...]}".into()))?;
    if obj.is_empty() {
        return Err(bad("names no principal".into()));
    }
    let mut out = Vec::new();
    for (k, vals) in obj {
        let kind = [
            PrincipalKind::Ram,
            PrincipalKind::Service,
            PrincipalKind::Federated,
        ]
        .into_iter()
        .find(|p| p.name() == k)
        .ok_or_else(|| bad(format!("unknown principal type \"{k}\"")))?;
        let list = strings(i, "Principal", vals)?;
        out.extend(list.iter().map(|s| (kind, Pattern::exact(s))));
    }
    Ok(out)
}

fn conditions(i: usize, block: &Map<String, Value>) -> Result<Vec<Condition>, Malformed> {
    let mut out = Vec::new();
    for (op_name, keys) in block {
        let op = Operator::from_name(op_name).ok_or_else(|| Malformed::UnknownOperator {
            statement: i,
            operator: op_name.clone(),
        })?;
        let keys = match keys {
            Value::Object(k) if !k.is_empty() => k,
            _ => {
                return Err(Malformed::OperatorNotObject {
                    statement: i,
                    operator: op_name.clone(),
                });
            }
        };
        for (key, vals) in keys {
            let bad = |value: String| Malformed::BadConditionValue {
                statement: i,
                operator: op_name.clone(),
                key: key.clone(),
                value,
            };
            let raw: Vec<RawValue> = match vals {
                Value::Array(a) if a.is_empty() => return Err(bad("[]".into())),
                Value::Array(a) => a.iter().map(raw_value).collect::<Option<_>>(),
                v => raw_value(v).map(|r| vec![r]),
            }
            .ok_or_else(|| bad(vals.to_string()))?;
            let c = Condition::compile(op, key, &raw).map_err(|e| bad(format!("\"{}\"", e.0)))?;
            out.push(c);
        }
    }
    Ok(out)
}

/// Strings, numbers and booleans are values; anything else is not.
fn raw_value(v: &Value) -> Option<RawValue> {
    match v {
        Value::String(s) => Some(RawValue(s.clone())),
        Value::Number(n) => Some(RawValue(n.to_string())),
        Value::Bool(b) => Some(RawValue(b.to_string())),
        _ => None,
    }
}

/// A JSON value that refuses duplicate object keys. `serde_json::Value` keeps the last of
/// two equal keys silently, so `{"Effect":"Deny","Effect":"Allow"}` would read as an Allow
/// that a reviewer reads as a Deny; a policy document with a duplicate key is malformed
/// instead **[inference: RAM's behaviour on duplicates is undocumented]**.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
