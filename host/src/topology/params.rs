//! Parameter values (declared defaults, then the instance's values, then command-line
//! overrides), their type checks, and `${...}` substitution including LVA's system variables.

use std::collections::HashMap;
use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

use super::error::code;
use super::json::Report;
use super::model::{Instance, ParameterType, Topology};

/// LVA's limit on parameter names.
const MAX_PARAMETER_NAME: usize = 64;

pub(crate) const SYSTEM_DATE_TIME: &str = "System.DateTime";
pub(crate) const SYSTEM_PRECISE_DATE_TIME: &str = "System.PreciseDateTime";
const SYSTEM_TOPOLOGY_NAME: &str = "System.GraphTopologyName";
const SYSTEM_INSTANCE_NAME: &str = "System.GraphInstanceName";

/// AVA's names for the same four variables (AVA-FAQ), mapped to LVA's.
const AVA_SYSTEM_VARIABLES: [(&str, &str); 4] = [
    ("System.TopologyName", SYSTEM_TOPOLOGY_NAME),
    ("System.PipelineName", SYSTEM_INSTANCE_NAME),
    ("System.Runtime.DateTime", SYSTEM_DATE_TIME),
    ("System.Runtime.PreciseDateTime", SYSTEM_PRECISE_DATE_TIME),
];

struct Value {
    text: String,
    secret: bool,
}

/// The value of every parameter that has one, plus the system variables.
pub(crate) struct Params {
    values: HashMap<String, Value>,
    declared: HashMap<String, ParameterType>,
    system: [(&'static str, String); 4],
}

/// The result of substituting one string.
pub(crate) struct Resolved {
    pub value: String,
    /// True when a `SecretString` parameter went into the value.
    pub secret: bool,
    template: String,
}

impl Resolved {
    /// What may be shown in messages: the value, or the unsubstituted text if a secret is in it.
    pub fn shown(&self) -> &str {
        if self.secret {
            &self.template
        } else {
            &self.value
        }
    }
}

/// Whether `${System.DateTime}` and `${System.PreciseDateTime}` are replaced now or kept for
/// the recorder to render per file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeVars {
    Now,
    Keep,
}

impl Params {
    pub fn collect(
        topology: &Topology,
        instance: Option<&Instance>,
        instance_name: &str,
        overrides: &[(String, String)],
        now: SystemTime,
        r: &mut Report,
    ) -> Self {
        let mut params = Params {
            values: HashMap::new(),
            declared: HashMap::new(),
            system: system_variables(
                topology.name.as_deref().unwrap_or_default(),
                instance_name,
                now,
            ),
        };
        let mut bad_defaults = Vec::new();
        for (i, decl) in topology.parameters.iter().enumerate() {
            let path = format!("$.properties.parameters[{i}]");
            let Some(name) = &decl.name else { continue };
            if name.is_empty()
                || name.chars().count() > MAX_PARAMETER_NAME
                || name.contains(['$', '{', '}'])
            {
                r.error(
                    code::NAME_INVALID,
                    format!("{path}.name"),
                    format!("parameter name '{name}' must be 1 to {MAX_PARAMETER_NAME} characters without '$', '{{' or '}}'"),
                );
            }
            if params.declared.contains_key(name) {
                r.error(
                    code::PARAMETER_DUPLICATE,
                    format!("{path}.name"),
                    format!("parameter '{name}' is declared more than once"),
                );
                continue;
            }
            let Some(kind) = decl.kind else { continue };
            params.declared.insert(name.clone(), kind);
            if let Some(default) = &decl.default {
                if check_type(name, kind, default, &format!("{path}.default"), r) {
                    let secret = kind == ParameterType::SecretString;
                    let text = default.clone();
                    params.values.insert(name.clone(), Value { text, secret });
                } else {
                    // Reported as invalid; not reported again as missing.
                    bad_defaults.push(name.as_str());
                }
            }
        }
        let mut supplied: HashMap<String, String> = HashMap::new();
        if let Some(instance) = instance {
            for (name, value, path) in &instance.parameters {
                let (Some(name), Some(value)) = (name, value) else {
                    continue;
                };
                if let Some(first) = supplied.insert(name.clone(), path.clone()) {
                    r.error(
                        code::PARAMETER_DUPLICATE,
                        format!("{path}.name"),
                        format!("parameter '{name}' is already given at {first}"),
                    );
                    continue;
                }
                params.supply(
                    name,
                    value,
                    &format!("{path}.name"),
                    &format!("{path}.value"),
                    r,
                );
            }
        }
        for (name, value) in overrides {
            let target = format!("--param {name}");
            params.supply(name, value, &target, &target, r);
        }
        for (i, decl) in topology.parameters.iter().enumerate() {
            if let Some(name) = &decl.name
                && decl.kind.is_some()
                && !params.values.contains_key(name)
                && !bad_defaults.contains(&name.as_str())
            {
                r.error(
                    code::PARAMETER_VALUE_MISSING,
                    format!("$.properties.parameters[{i}]"),
                    format!("parameter '{name}' has no default, so the instance (or --param {name}=VALUE) must give a value"),
                );
            }
        }
        params
    }

    fn supply(
        &mut self,
        name: &str,
        value: &str,
        name_target: &str,
        value_target: &str,
        r: &mut Report,
    ) {
        match self.declared.get(name) {
            None => r.error(
                code::PARAMETER_NOT_DECLARED,
                name_target,
                format!("parameter '{name}' is not declared in the topology; only declared parameters can be given values"),
            ),
            Some(&kind) => {
                if check_type(name, kind, value, value_target, r) {
                    self.values.insert(name.to_owned(), Value { text: value.to_owned(), secret: kind == ParameterType::SecretString });
                }
            }
        }
    }

    /// Replaces every `${name}` in `text`. Unknown names are reported at `path`; a parameter
    /// that is declared but has no value was already reported, so it only makes this `None`.
    pub fn substitute(
        &self,
        text: &str,
        path: &str,
        time: TimeVars,
        r: &mut Report,
    ) -> Option<Resolved> {
        let mut out = String::with_capacity(text.len());
        let mut secret = false;
        let mut ok = true;
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                r.error(
                    code::PARAMETER_REFERENCE_INVALID,
                    path,
                    format!("'${{' without a closing '}}' in '{text}'"),
                );
                return None;
            };
            let written = &after[..end];
            rest = &after[end + 1..];
            let name = AVA_SYSTEM_VARIABLES
                .iter()
                .find(|(ava, _)| ava.eq_ignore_ascii_case(written))
                .map_or(written, |(_, lva)| *lva);
            if let Some(system) = name
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("System."))
                .map(|_| &name[7..])
            {
                let keep = time == TimeVars::Keep
                    && (name.eq_ignore_ascii_case(SYSTEM_DATE_TIME)
                        || name.eq_ignore_ascii_case(SYSTEM_PRECISE_DATE_TIME));
                match self
                    .system
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                {
                    Some((canonical, _)) if keep => out.push_str(&format!("${{{canonical}}}")),
                    Some((_, value)) => out.push_str(value),
                    None => {
                        r.error(
                            code::SYSTEM_VARIABLE_UNKNOWN,
                            path,
                            format!(
                                "unknown system variable 'System.{system}'; known: {SYSTEM_TOPOLOGY_NAME}, {SYSTEM_INSTANCE_NAME}, {SYSTEM_DATE_TIME}, {SYSTEM_PRECISE_DATE_TIME} and AVA's System.TopologyName, System.PipelineName, System.Runtime.DateTime, System.Runtime.PreciseDateTime"
                            ),
                        );
                        ok = false;
                    }
                }
            } else if let Some(value) = self.values.get(name) {
                out.push_str(&value.text);
                secret |= value.secret;
            } else {
                if !self.declared.contains_key(name) {
                    r.error(
                        code::PARAMETER_NOT_DECLARED,
                        path,
                        format!(
                            "'${{{name}}}' refers to a parameter the topology does not declare"
                        ),
                    );
                }
                ok = false;
            }
        }
        out.push_str(rest);
        ok.then(|| Resolved {
            value: out,
            secret,
            template: text.to_owned(),
        })
    }
}

/// Checks `value` against the declared type; the message never repeats a secret.
fn check_type(name: &str, kind: ParameterType, value: &str, target: &str, r: &mut Report) -> bool {
    let valid = match kind {
        ParameterType::String | ParameterType::SecretString => true,
        ParameterType::Int => value.trim().parse::<i64>().is_ok(),
        ParameterType::Double => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
        ParameterType::Bool => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
    };
    if !valid {
        r.error(
            code::PARAMETER_VALUE_INVALID,
            target,
            format!(
                "value '{value}' of parameter '{name}' is not a valid {}",
                kind.as_str()
            ),
        );
    }
    valid
}

fn system_variables(
    topology: &str,
    instance: &str,
    now: SystemTime,
) -> [(&'static str, String); 4] {
    let now = OffsetDateTime::from(now);
    let seconds = format_description!("[year][month][day]T[hour][minute][second]Z");
    let millis =
        format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]Z");
    [
        (SYSTEM_TOPOLOGY_NAME, topology.to_owned()),
        (SYSTEM_INSTANCE_NAME, instance.to_owned()),
        (SYSTEM_DATE_TIME, now.format(&seconds).unwrap_or_default()),
        (
            SYSTEM_PRECISE_DATE_TIME,
            now.format(&millis).unwrap_or_default(),
        ),
    ]
}

/// Renders the time variables kept by [`TimeVars::Keep`] for the instant `at`.
pub fn render_time_variables(pattern: &str, at: SystemTime) -> String {
    let [_, _, (_, date_time), (_, precise)] = system_variables("", "", at);
    pattern
        .replace(&format!("${{{SYSTEM_DATE_TIME}}}"), &date_time)
        .replace(&format!("${{{SYSTEM_PRECISE_DATE_TIME}}}"), &precise)
}
