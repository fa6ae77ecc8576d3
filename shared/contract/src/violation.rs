//! Validation violations: what is wrong with an event, where (a JSON pointer) and a stable code.

use std::fmt;

use serde::Serialize;

/// A stable, machine-readable reason an event was rejected.
///
/// The `snake_case` names are part of the public API: producers match on them. Add codes, never rename them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The bytes are not valid JSON (or not UTF-8).
    MalformedJson,
    /// The envelope or its `data` is not a JSON object.
    NotAnObject,
    /// A required attribute or field is absent (or `null`).
    MissingField,
    /// A value has the wrong JSON type (a number where a string belongs, …).
    InvalidType,
    /// A value has the right type but is not acceptable (a bad timestamp, an unknown enum variant, …).
    InvalidValue,
    /// `specversion` is not `1.0`.
    UnsupportedSpecversion,
    /// `type` names no event in the catalogue.
    UnknownEventType,
    /// `datacontenttype` is not JSON.
    UnsupportedDataContentType,
    /// A string is empty where a value is required.
    Empty,
    /// A string is longer than allowed.
    TooLong,
    /// An identifier holds characters outside printable ASCII, or whitespace.
    InvalidIdentifier,
    /// A text holds control characters.
    InvalidText,
    /// Not a valid e-mail address.
    InvalidEmail,
    /// Not an active ISO 4217 currency code.
    InvalidCurrency,
    /// An amount that must be positive is zero or negative.
    AmountNotPositive,
    /// An amount above the largest accepted value.
    AmountTooLarge,
    /// `subject` differs from the aggregate id the event's data names.
    SubjectMismatch,
    /// An extension attribute with an invalid name or a non-scalar value.
    InvalidExtension,
    /// A member appears twice in one object (parsers disagree on which one wins, so neither does).
    DuplicateMember,
    /// `data` has a member its event type does not define (often a misspelt optional one, whose value would
    /// otherwise be lost). Only at the edge: consumers ignore members they do not know yet.
    UnknownMember,
    /// Two events of one batch share an id under one `source` (the second would be taken for a resend of the
    /// first). Only at the edge, which sees the batch.
    DuplicateId,
}

impl Code {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed_json",
            Code::NotAnObject => "not_an_object",
            Code::MissingField => "missing_field",
            Code::InvalidType => "invalid_type",
            Code::InvalidValue => "invalid_value",
            Code::UnsupportedSpecversion => "unsupported_specversion",
            Code::UnknownEventType => "unknown_event_type",
            Code::UnsupportedDataContentType => "unsupported_data_content_type",
            Code::Empty => "empty",
            Code::TooLong => "too_long",
            Code::InvalidIdentifier => "invalid_identifier",
            Code::InvalidText => "invalid_text",
            Code::InvalidEmail => "invalid_email",
            Code::InvalidCurrency => "invalid_currency",
            Code::AmountNotPositive => "amount_not_positive",
            Code::AmountTooLarge => "amount_too_large",
            Code::SubjectMismatch => "subject_mismatch",
            Code::InvalidExtension => "invalid_extension",
            Code::DuplicateMember => "duplicate_member",
            Code::UnknownMember => "unknown_member",
            Code::DuplicateId => "duplicate_id",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Stable reason.
    pub code: Code,
    /// Human-readable explanation; never contains the offending value (it may be personal data).
    pub message: String,
    /// JSON pointer (RFC 6901) to the offending member, e.g. `/data/email`; `None` for the document as a whole.
    pub field: Option<String>,
}

impl Violation {
    /// A violation at `field` (a JSON pointer).
    pub fn at(code: Code, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A violation of the document as a whole.
    pub fn whole(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} at {}: {}", self.code, field, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// Every violation found in one event, in document order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (and {} more)", .0[0], .0.len() - 1)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// Wraps a non-empty list; `None` when there is nothing wrong.
    pub fn from_vec(list: Vec<Violation>) -> Option<Self> {
        (!list.is_empty()).then_some(Self(list))
    }

    /// A single violation.
    pub fn one(violation: Violation) -> Self {
        Self(vec![violation])
    }

    /// The first violation: the one an error body leads with.
    pub fn first(&self) -> &Violation {
        &self.0[0]
    }

    /// All violations.
    pub fn as_slice(&self) -> &[Violation] {
        &self.0
    }

    /// Whether one violation has this code.
    pub fn has(&self, code: Code) -> bool {
        self.0.iter().any(|v| v.code == code)
    }

    /// Whether one violation has this code at this field.
    pub fn has_at(&self, code: Code, field: &str) -> bool {
        self.0
            .iter()
            .any(|v| v.code == code && v.field.as_deref() == Some(field))
    }

    /// Prefixes every field pointer (used when an event sits inside a larger document).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for v in &mut self.0 {
            v.field = Some(match v.field.take() {
                Some(f) => format!("{prefix}{f}"),
                None => prefix.to_owned(),
            });
        }
        self
    }
}

/// Maps a serde error (with the path where it happened) to a violation.
pub(crate) fn from_serde(path: String, err: &serde_json::Error) -> Violation {
    use serde_json::error::Category;
    let field = if path.is_empty() || path == "." {
        None
    } else {
        Some(path)
    };
    let text = err.to_string();
    // serde_json appends " at line L column C": where a pointer says where, the position would confuse.
    let mut message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let code = match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => Code::MalformedJson,
        Category::Data if message.starts_with("missing field") => Code::MissingField,
        Category::Data if message.starts_with("invalid type") => Code::InvalidType,
        Category::Data => Code::InvalidValue,
    };
    // A document that does not parse has no pointer to name; its line and column say where to look.
    if code == Code::MalformedJson && field.is_none() && err.line() > 0 {
        message = format!("{message} (line {}, column {})", err.line(), err.column());
    }
    // A missing field is reported at the member that is missing, not at its parent object.
    let field = match (code, field) {
        (Code::MissingField, parent) => {
            let name = message.split('`').nth(1).unwrap_or_default();
            Some(format!(
                "{}/{}",
                parent.unwrap_or_default(),
                escape_pointer(name)
            ))
        }
        (_, field) => field,
    };
    Violation {
        code,
        message,
        field,
    }
}

/// Escapes one JSON pointer reference token (RFC 6901 §3).
pub(crate) fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Converts a `serde_path_to_error` path (`a.b[0]`) to a JSON pointer (`/a/b/0`).
pub(crate) fn pointer_from_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&escape_pointer(key));
            }
            Segment::Unknown => {}
        }
    }
    out
}
