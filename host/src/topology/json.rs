//! Lenient reading of LVA JSON: property names are matched case-insensitively (the official
//! samples mix `localMediaCacheMaximumSizeMiB` and `LocalMediaCacheMaximumSizeMiB`), scalar
//! values may be strings, numbers or booleans, and every finding is collected with its JSON path
//! instead of stopping at the first.

use serde_json::{Map, Value};

use super::error::{ErrorDetail, code};

/// Errors and warnings collected while reading and validating one request.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub errors: Vec<ErrorDetail>,
    pub warnings: Vec<ErrorDetail>,
}

impl Report {
    pub fn error(&mut self, code: &str, target: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ErrorDetail::new(code, target, message));
    }

    pub fn warn(&mut self, code: &str, target: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ErrorDetail::new(code, target, message));
    }
}

/// Parses JSON text; a syntax error becomes one `InvalidJson` detail naming line and column.
pub(crate) fn parse_text(text: &str, root: &str) -> Result<Value, ErrorDetail> {
    serde_json::from_str(text).map_err(|e| {
        ErrorDetail::new(
            code::INVALID_JSON,
            root,
            format!(
                "malformed JSON at line {} column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e)
            ),
        )
    })
}

/// serde_json appends " at line L column C" to its messages; we state the position first.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// How unread properties are treated when an object has been read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// LVA-defined objects: LVA may have properties we do not read; warn and go on.
    Warn,
    /// Our own extensions: a typo must not be silently ignored.
    Error,
}

/// A JSON object being read, with its path and which properties were read.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: Vec<bool>,
}

impl<'a> Obj<'a> {
    /// `None` (and an error) when `value` is not an object.
    pub fn new(value: &'a Value, path: impl Into<String>, r: &mut Report) -> Option<Self> {
        let path = path.into();
        match value {
            Value::Object(map) => Some(Self {
                map,
                used: vec![false; map.len()],
                path,
            }),
            other => {
                r.error(
                    code::PROPERTY_TYPE_INVALID,
                    &path,
                    format!("expected an object, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn child(&self, name: &str) -> String {
        format!("{}.{}", self.path, name)
    }

    /// The value of property `name` (any casing). Two properties differing only by case are
    /// ambiguous and reported.
    pub fn get(&mut self, name: &str, r: &mut Report) -> Option<&'a Value> {
        let mut found = None;
        for (i, (key, value)) in self.map.iter().enumerate() {
            if key.eq_ignore_ascii_case(name) {
                self.used[i] = true;
                if found.is_some() {
                    r.error(
                        code::PROPERTY_DUPLICATE,
                        self.child(name),
                        format!("property '{name}' is given more than once (property names are case-insensitive)"),
                    );
                } else {
                    found = Some(value);
                }
            }
        }
        found
    }

    /// A scalar property as text: strings as they are, numbers and booleans in JSON notation.
    pub fn scalar(&mut self, name: &str, r: &mut Report) -> Option<String> {
        let value = self.get(name, r)?;
        let path = self.child(name);
        scalar(value, &path, r)
    }

    /// Like [`Obj::scalar`], but absence is an error.
    pub fn required_scalar(&mut self, name: &str, r: &mut Report) -> Option<String> {
        let path = self.child(name);
        match self.get(name, r) {
            None => {
                r.error(
                    code::PROPERTY_REQUIRED,
                    path,
                    format!("property '{name}' is required"),
                );
                None
            }
            Some(value) => scalar(value, &path, r),
        }
    }

    /// An array property; `null` counts as absent.
    pub fn array(&mut self, name: &str, r: &mut Report) -> Option<&'a Vec<Value>> {
        match self.get(name, r)? {
            Value::Array(items) => Some(items),
            Value::Null => None,
            other => {
                r.error(
                    code::PROPERTY_TYPE_INVALID,
                    self.child(name),
                    format!("expected an array, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// Reports the properties nobody read.
    pub fn finish(self, r: &mut Report, unknown: Unknown) {
        for (i, key) in self.map.keys().enumerate() {
            if self.used[i] {
                continue;
            }
            let target = format!("{}.{}", self.path, key);
            match unknown {
                Unknown::Warn => r.warn(
                    code::PROPERTY_UNKNOWN,
                    target,
                    format!("property '{key}' is not used by this host and is ignored"),
                ),
                Unknown::Error => r.error(
                    code::PROPERTY_UNKNOWN,
                    target,
                    format!("unknown property '{key}'"),
                ),
            }
        }
    }
}

pub(crate) fn scalar(value: &Value, path: &str, r: &mut Report) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            r.error(
                code::PROPERTY_TYPE_INVALID,
                path,
                format!("expected a string or number, found {}", kind(other)),
            );
            None
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
