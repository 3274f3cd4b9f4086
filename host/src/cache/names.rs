//! Names of the cache's files: built here from checked parts, parsed back at start-up.

use super::{CacheError, JournalHeader, SegmentId, SegmentMeta};
use crate::time::Ticks90k;

pub(super) fn open_name(id: SegmentId) -> String {
    format!("{:012}.open", id.0)
}

pub(super) fn journal_name(id: SegmentId) -> String {
    format!("{:012}.journal", id.0)
}

pub(super) fn check_name_part(
    what: &'static str,
    value: &str,
    ok: impl Fn(char) -> bool,
) -> Result<(), CacheError> {
    if value.is_empty() || value.len() > 200 || !value.chars().all(ok) {
        return Err(CacheError::BadName {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

pub(super) fn sealed_meta(
    id: SegmentId,
    h: &JournalHeader,
    end: Ticks90k,
    bytes: u64,
) -> SegmentMeta {
    let file_name = h.name.clone().unwrap_or_else(|| {
        format!(
            "{:012}_{}_{}_{}_{}_{}.{}",
            id.0,
            h.run,
            h.sequence,
            h.start.0,
            end.0,
            h.codecs.replace(',', "+"),
            h.ext
        )
    });
    SegmentMeta {
        id,
        run: h.run,
        sequence: h.sequence,
        start: h.start,
        end,
        bytes,
        codecs: h.codecs.clone(),
        file_name,
        // A file sink's finished file has nothing left to upload.
        uploaded: h.name.is_some(),
    }
}

pub(super) fn parse_sealed(name: &str) -> Option<SegmentMeta> {
    let parts: Vec<&str> = name.splitn(6, '_').collect();
    let [id, run, seq, start, end, rest] = parts.as_slice() else {
        return None;
    };
    let (codecs, _ext) = rest.rsplit_once('.')?;
    Some(SegmentMeta {
        id: SegmentId(id.parse().ok()?),
        run: run.parse().ok()?,
        sequence: seq.parse().ok()?,
        start: Ticks90k(start.parse().ok()?),
        end: Ticks90k(end.parse().ok()?),
        bytes: 0,
        codecs: codecs.replace('+', ","),
        file_name: name.to_owned(),
        uploaded: false,
    })
}

/// Makes a directory name from topology values (instance, sink node): anything outside
/// `[A-Za-z0-9._-]` becomes `_`, and names that would mean something to the file system are
/// prefixed so they cannot.
pub fn sanitize_dir_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}
