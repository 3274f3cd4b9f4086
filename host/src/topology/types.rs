//! Values validated once at the edge: whoever holds one of these knows it obeys LVA's rules.

use serde::{Serialize, Serializer};

use crate::time::TICKS_PER_SECOND;

/// A password or `SecretString` value. Printing it in any way shows `***`; only
/// [`Secret::expose`] gives the text, for the one place that sends it to the camera.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// An asset sink's `segmentLength`: 30 s to 5 min in steps of 30 s (LVA's rule; default 30 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SegmentLength(u64);

impl SegmentLength {
    pub const MIN_SECS: u64 = 30;
    pub const MAX_SECS: u64 = 300;
    pub const DEFAULT: SegmentLength = SegmentLength(30);

    /// From whole seconds; the error says which rule is broken.
    pub fn from_secs(secs: u64) -> Result<Self, String> {
        if secs < Self::MIN_SECS {
            Err(format!("{secs} s is shorter than the minimum PT30S"))
        } else if secs > Self::MAX_SECS {
            Err(format!("{secs} s is longer than the maximum PT5M"))
        } else if !secs.is_multiple_of(30) {
            Err(format!(
                "{secs} s is not a multiple of 30 s (valid: PT30S, PT1M, PT1M30S, ... PT5M)"
            ))
        } else {
            Ok(Self(secs))
        }
    }

    /// From an ISO-8601 duration such as `PT30S`, `PT0M30S`, `PT1M30S` or `PT5M`.
    pub fn parse_iso8601(text: &str) -> Result<Self, String> {
        let (secs, nanos) = parse_iso8601_duration(text)?;
        if nanos != 0 {
            return Err(format!(
                "'{text}' is not a whole number of seconds; use a multiple of 30 s"
            ));
        }
        Self::from_secs(secs).map_err(|e| format!("'{text}': {e}"))
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// The length in 90 kHz ticks.
    pub fn ticks(self) -> i64 {
        self.0 as i64 * TICKS_PER_SECOND
    }

    /// The canonical ISO-8601 form (`PT30S`, `PT1M`, `PT1M30S`, ... `PT5M`).
    pub fn to_iso8601(self) -> String {
        match (self.0 / 60, self.0 % 60) {
            (0, s) => format!("PT{s}S"),
            (m, 0) => format!("PT{m}M"),
            (m, s) => format!("PT{m}M{s}S"),
        }
    }
}

/// Parses `P[nD][T[nH][nM][n[.f]S]]` into whole seconds and nanoseconds. Years, months and
/// weeks have no fixed length and are refused.
pub fn parse_iso8601_duration(text: &str) -> Result<(u64, u32), String> {
    let invalid = || format!("'{text}' is not an ISO-8601 duration such as PT30S");
    let rest = text.strip_prefix(['P', 'p']).ok_or_else(invalid)?;
    if rest.is_empty() {
        return Err(invalid());
    }
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if time == Some("") {
        return Err(invalid());
    }
    let mut secs: u64 = 0;
    let mut nanos: u32 = 0;
    let mut add = |n: u64, unit: u64| -> Result<(), String> {
        secs = n
            .checked_mul(unit)
            .and_then(|v| v.checked_add(secs))
            .ok_or_else(|| format!("'{text}' is too long"))?;
        Ok(())
    };
    for (number, unit) in components(date).ok_or_else(invalid)? {
        match unit.to_ascii_uppercase() {
            'D' => add(whole(number).ok_or_else(invalid)?, 86_400)?,
            'Y' | 'M' | 'W' => {
                return Err(format!(
                    "'{text}' uses years, months or weeks, which have no fixed length"
                ));
            }
            _ => return Err(invalid()),
        }
    }
    let mut last_rank = 0;
    for (number, unit) in components(time.unwrap_or("")).ok_or_else(invalid)? {
        let rank = match unit.to_ascii_uppercase() {
            'H' => 1,
            'M' => 2,
            'S' => 3,
            _ => return Err(invalid()),
        };
        if rank <= last_rank {
            return Err(invalid());
        }
        last_rank = rank;
        match rank {
            1 => add(whole(number).ok_or_else(invalid)?, 3_600)?,
            2 => add(whole(number).ok_or_else(invalid)?, 60)?,
            _ => {
                let (int, frac) = number.split_once(['.', ',']).unwrap_or((number, ""));
                add(whole(int).ok_or_else(invalid)?, 1)?;
                if !frac.is_empty() {
                    if !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid());
                    }
                    let digits: String =
                        frac.chars().chain(std::iter::repeat('0')).take(9).collect();
                    nanos = digits.parse().map_err(|_| invalid())?;
                }
            }
        }
    }
    Ok((secs, nanos))
}

fn whole(number: &str) -> Option<u64> {
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| number.parse().ok())
        .flatten()
}

/// Splits `1H30M` into `[("1",'H'), ("30",'M')]`; `None` when a unit letter lacks a number.
fn components(text: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphabetic() {
            if i == start {
                return None;
            }
            out.push((&text[start..i], c));
            start = i + 1;
        }
    }
    (start == text.len()).then_some(out)
}

/// A resolved `assetNamePattern`: 1 to 260 characters, none of `< > % & : \ / ? * + . '`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct AssetName(String);

impl AssetName {
    pub const FORBIDDEN: &'static [char] =
        &['<', '>', '%', '&', ':', '\\', '/', '?', '*', '+', '.', '\''];
    /// The regular expression LVA reports in `PropertyValueInvalidPattern`.
    pub const PATTERN: &'static str = r"^[^<>%&:\\/?*+.']{1,260}$";

    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        let len = name.chars().count();
        if len == 0 || len > 260 {
            return Err(format!(
                "the asset name must be 1 to 260 characters long, not {len}"
            ));
        }
        if let Some(c) = name.chars().find(|c| Self::FORBIDDEN.contains(c)) {
            return Err(format!(
                "the asset name '{name}' contains '{c}'; it must match '{}'",
                Self::PATTERN
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AssetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// RTSP interleaving: RTP over the RTSP TCP connection, the one transport the RTSP client
/// speaks (LVA's `Http` tunnelling is refused at validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RtspTransport {
    Tcp,
}

/// What a sink records of its source's streams, from the input's `outputSelectors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MediaSelection {
    VideoOnly,
    AudioAndVideo,
}

/// The plugin kinds an asset sink can name (the worlds of `wit/plugin.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PluginKind {
    Segmenter,
    Evictor,
    Formatter,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Segmenter => "segmenter",
            PluginKind::Evictor => "evictor",
            PluginKind::Formatter => "formatter",
        })
    }
}

/// Answers which plugins exist, so a topology naming one can be checked before it runs.
pub trait PluginLookup {
    fn kind_of(&self, name: &str) -> Option<PluginKind>;
}

/// The plugins embedded in the host, by name. The plugin room's `PluginHost` also knows the
/// plugin directory; this is for callers that have no plugin host (tests, offline validation).
pub struct DefaultPluginNames;

impl DefaultPluginNames {
    pub const ALL: &'static [(&'static str, PluginKind)] = &[
        ("segmenter-gop", PluginKind::Segmenter),
        ("evict-oldest", PluginKind::Evictor),
        ("evict-uploaded-first", PluginKind::Evictor),
        ("format-cmaf", PluginKind::Formatter),
    ];
}

impl PluginLookup for DefaultPluginNames {
    fn kind_of(&self, name: &str) -> Option<PluginKind> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }
}

/// The plugins an asset sink asked for; `None` means the host's default for that kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PluginSelection {
    pub segmenter: Option<String>,
    pub evictor: Option<String>,
    pub formatter: Option<String>,
}

/// `text` with the userinfo (`user:password@`) of every URL in it replaced by `***@`.
pub fn scrub_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the path, the query, or whatever delimits the URL in prose.
        let authority = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || "\"'<>`".contains(c)
            })
            .unwrap_or(tail.len());
        match tail[..authority].rfind('@') {
            Some(userinfo) => {
                out.push_str("***");
                rest = &tail[userinfo..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// What validation does with a node type this host recognises but does not run (motion
/// detection, extensions, IoT Hub sinks, ...). The setting is `unsupportedNodes` (command-line
/// `--unsupported-nodes`, or this field through the API).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum UnsupportedNodes {
    /// Refuse the topology, naming every such node at its JSON path (LVA-compatible default:
    /// nothing an operator configured is silently skipped).
    #[default]
    Reject,
    /// Record the paths RTSP source → sink and list every other node as not run. A sink whose
    /// input passes through such a node is still refused.
    Ignore,
}

impl UnsupportedNodes {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Ignore => "ignore",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_quoted_urls_are_scrubbed() {
        let retina =
            "Bad URL rtsps://admin:s3cr%40t@127.0.0.1:8554/cam1; only scheme rtsp supported";
        let scrubbed = scrub_userinfo(retina);
        assert_eq!(
            scrubbed,
            "Bad URL rtsps://***@127.0.0.1:8554/cam1; only scheme rtsp supported"
        );
        assert_eq!(
            scrub_userinfo("a 'rtsp://u:p@h' and rtsp://h2/x?q=a@b, rtsp://v@w"),
            "a 'rtsp://***@h' and rtsp://h2/x?q=a@b, rtsp://***@w"
        );
        assert_eq!(scrub_userinfo("no url here: a@b"), "no url here: a@b");
    }
}
