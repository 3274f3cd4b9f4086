//! Start-up reconciliation: what a previous process left in the directory becomes a
//! consistent index again (temp files removed, open segments sealed up to their last
//! journaled fragment, orphan journals removed).

use std::collections::BTreeMap;
use std::io::Read;

use cap_std::fs::{Dir, OpenOptions};

use super::logs::sync_dir;
use super::names::{parse_sealed, sealed_meta};
use super::{CacheError, JournalHeader, Recovery, SegmentId, SegmentMeta, io};
use crate::time::Ticks90k;

pub(super) const RUNNING: &str = "running";

/// The step that gives a segment sealed at start-up its final name: `(open name, meta)`.
pub(super) type Place<'a> = dyn FnMut(&str, &SegmentMeta) -> Result<(), CacheError> + 'a;

/// Sealed segments by id, after every open one was sealed (and put in place by `place`) or
/// removed.
pub(super) fn reconcile(
    dir: &Dir,
    place: &mut Place<'_>,
) -> Result<(BTreeMap<SegmentId, SegmentMeta>, Recovery), CacheError> {
    let mut recovery = Recovery {
        crashed: dir.exists(RUNNING),
        ..Recovery::default()
    };
    let mut sealed = BTreeMap::new();
    let mut opens = Vec::new();
    let mut journals = Vec::new();
    for entry in dir.entries().map_err(io("list", "."))? {
        let entry = entry.map_err(io("list", "."))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            dir.remove_file(&name).map_err(io("remove", &name))?;
            recovery.removed.push(name);
        } else if let Some(id) = name.strip_suffix(".open") {
            opens.push((id.to_owned(), name));
        } else if let Some(id) = name.strip_suffix(".journal") {
            journals.push((id.to_owned(), name));
        } else if let Some(mut meta) = parse_sealed(&name) {
            meta.bytes = entry.metadata().map_err(io("stat", &name))?.len();
            sealed.insert(meta.id, meta);
        }
    }
    for (id, name) in &journals {
        if !opens.iter().any(|(o, _)| o == id) {
            // The segment was sealed (renamed) but the crash came before the journal went.
            dir.remove_file(name).map_err(io("remove", name))?;
            recovery.removed.push(name.clone());
        }
    }
    for (id, name) in opens {
        let journal_name = format!("{id}.journal");
        match recover_open(dir, &name, &journal_name, place)? {
            Some((meta, cut)) => {
                recovery.truncated_bytes += cut;
                recovery.sealed_open.push(meta.id);
                sealed.insert(meta.id, meta);
            }
            None => recovery.removed.push(name),
        }
    }
    if !recovery.sealed_open.is_empty() {
        recovery.crashed = true;
    }
    Ok((sealed, recovery))
}

/// Seals a segment left open by a crash up to its last journaled fragment whose bytes are
/// on disk; removes it if it has none. Returns the sealed meta and the bytes cut off.
fn recover_open(
    dir: &Dir,
    name: &str,
    journal_name: &str,
    place: &mut Place<'_>,
) -> Result<Option<(SegmentMeta, u64)>, CacheError> {
    let id: u64 = name
        .trim_end_matches(".open")
        .parse()
        .map_err(|_| CacheError::BadName {
            what: "open segment",
            value: name.to_owned(),
        })?;
    let mut text = String::new();
    if let Ok(mut j) = dir.open(journal_name) {
        j.read_to_string(&mut text)
            .map_err(io("read", journal_name))?;
    }
    let file = dir
        .open_with(name, OpenOptions::new().read(true).write(true))
        .map_err(io("open", name))?;
    let len = file.metadata().map_err(io("stat", name))?.len();
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let header: Option<JournalHeader> = lines.next().and_then(|l| serde_json::from_str(l).ok());
    let mut last: Option<(u64, Ticks90k)> = None;
    if header.is_some() {
        for l in lines {
            let mut it = l.split_whitespace();
            let (Some(b), Some(t)) = (
                it.next().and_then(|b| b.parse().ok()),
                it.next().and_then(|t| t.parse().ok()),
            ) else {
                break;
            };
            if b > len {
                break;
            }
            last = Some((b, Ticks90k(t)));
        }
    }
    let (Some(header), Some((bytes, end))) = (header, last) else {
        drop(file);
        dir.remove_file(name).map_err(io("remove", name))?;
        if dir.exists(journal_name) {
            dir.remove_file(journal_name)
                .map_err(io("remove", journal_name))?;
        }
        sync_dir(dir)?;
        return Ok(None);
    };
    file.set_len(bytes).map_err(io("truncate", name))?;
    file.sync_all().map_err(io("fsync", name))?;
    drop(file);
    let meta = sealed_meta(SegmentId(id), &header, end, bytes);
    place(name, &meta)?;
    sync_dir(dir)?;
    dir.remove_file(journal_name)
        .map_err(io("remove", journal_name))?;
    tracing::info!(segment = %meta.file_name, cut = len - bytes, "sealed a segment left open by a crash");
    Ok(Some((meta, len - bytes)))
}
