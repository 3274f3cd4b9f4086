//! The open segment: begin, append whole fragments durably, seal. Only the recorder calls
//! these; the writer lock is held across their writes and syncs, and the index lock only
//! for the id and the sealed entry.

use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;

use cap_std::fs::{File, OpenOptions};

use super::logs::sync_dir;
use super::names::{check_name_part, journal_name, open_name, sealed_meta};
use super::{Cache, CacheError, JournalHeader, RunId, SegmentId, SegmentMeta, io, lock};
use crate::time::Ticks90k;

#[derive(Default)]
pub(super) struct Writer {
    open: Option<OpenSeg>,
    /// Segments whose seal failed before the rename (e.g. a full disk): complete up to their
    /// last fragment, counted in `used`, sealed again by the next `begin_segment`/`seal`.
    unsealed: Vec<Unsealed>,
}

impl Writer {
    fn bytes(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.bytes)
            + self.unsealed.iter().map(|u| u.bytes).sum::<u64>()
    }
}

struct OpenSeg {
    id: SegmentId,
    header: JournalHeader,
    file: File,
    journal: File,
    /// Length of the journal file: a failed append is cut back to it.
    journal_len: u64,
    bytes: u64,
    end: Ticks90k,
    fragments: u64,
}

/// A closed `.open` file waiting to be sealed.
struct Unsealed {
    id: SegmentId,
    header: JournalHeader,
    end: Ticks90k,
    bytes: u64,
}

impl Cache {
    fn publish_writer_bytes(&self, w: &Writer) {
        self.writer_bytes.store(w.bytes(), Ordering::Release);
    }

    /// End of the newest recorded media, if any.
    pub fn last_end(&self) -> Option<Ticks90k> {
        let open_end = lock(&self.writer).open.as_ref().map(|o| o.end);
        open_end.or_else(|| lock(&self.index).sealed.values().map(|m| m.end).max())
    }

    /// Starts a segment; `header` is its first bytes (the formatter's init), written as part of
    /// the first fragment's accounting.
    pub fn begin_segment(
        &self,
        run: RunId,
        sequence: u64,
        start: Ticks90k,
        codecs: &str,
        ext: &str,
    ) -> Result<SegmentId, CacheError> {
        check_name_part("codecs", codecs, |c| {
            c.is_ascii_alphanumeric() || ".,+-".contains(c)
        })?;
        check_name_part("extension", ext, |c| c.is_ascii_alphanumeric())?;
        let mut w = lock(&self.writer);
        if w.open.is_some() {
            return Err(CacheError::AlreadyOpen);
        }
        self.retry_unsealed(&mut w);
        self.publish_writer_bytes(&w);
        let id = {
            let mut index = lock(&self.index);
            let id = SegmentId(index.next_id);
            index.next_id += 1;
            index.next_run = index.next_run.max(run + 1);
            id
        };
        let name = open_name(id);
        let jname = journal_name(id);
        let name_in_media = match &self.files {
            None => None,
            Some(files) => {
                let taken = lock(&self.index)
                    .sealed
                    .values()
                    .map(|m| m.file_name.clone())
                    .collect();
                Some(files.choose_name(start, ext, &taken)?)
            }
        };
        let header = JournalHeader {
            run,
            sequence,
            start,
            codecs: codecs.to_owned(),
            ext: ext.to_owned(),
            name: name_in_media,
        };
        let file = self
            .dir
            .open_with(&name, OpenOptions::new().write(true).create_new(true))
            .map_err(io("create", &name))?;
        let mut line = serde_json::to_string(&header).expect("header serializes");
        line.push('\n');
        // The header and both directory entries are durable before the first fragment is:
        // recovery removes an `.open` whose journal has no header, and after a power cut a
        // file whose directory entry was never synced is gone whatever its data.
        let journal = self
            .dir
            .open_with(&jname, OpenOptions::new().append(true).create_new(true))
            .map_err(io("create", &jname))
            .and_then(|mut j| {
                j.write_all(line.as_bytes())
                    .map_err(io("write", &jname))
                    .and_then(|()| j.sync_data().map_err(io("fsync", &jname)))
                    .and_then(|()| sync_dir(&self.dir))
                    .map(|()| j)
            });
        let journal = match journal {
            Ok(j) => j,
            Err(e) => {
                // No segment without its header: remove both (a full disk, usually).
                drop(file);
                let _ = self.dir.remove_file(&name);
                let _ = self.dir.remove_file(&jname);
                return Err(e);
            }
        };
        self.live_begin(id, run, sequence, start);
        w.open = Some(OpenSeg {
            id,
            header,
            file,
            journal,
            journal_len: line.len() as u64,
            bytes: 0,
            end: start,
            fragments: 0,
        });
        Ok(id)
    }

    /// Appends one fragment (the concatenation of `parts`) that ends at `end`, durably: the
    /// bytes, then the journal line describing them, each synced before this returns.
    /// Call [`Cache::reserve`] for its size first.
    pub fn append_fragment(&self, parts: &[&[u8]], end: Ticks90k) -> Result<(), CacheError> {
        self.append_fragment_flagged(parts, end, false)
    }

    /// [`Cache::append_fragment`], telling the live view whether the fragment starts with a
    /// video keyframe (a segment's first fragment always does).
    pub fn append_fragment_flagged(
        &self,
        parts: &[&[u8]],
        end: Ticks90k,
        starts_with_keyframe: bool,
    ) -> Result<(), CacheError> {
        let mut w = lock(&self.writer);
        let open = w.open.as_mut().ok_or(CacheError::NotOpen)?;
        let name = open_name(open.id);
        let jname = journal_name(open.id);
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let line = format!("{} {}\n", open.bytes + len, end.0);
        let written = write_all_vectored(&mut open.file, parts)
            .map_err(io("write", &name))
            // Data before journal: a journal line may only describe bytes already on disk.
            .and_then(|()| open.file.sync_data().map_err(io("fsync", &name)))
            // Journal before acknowledging: once this returns, the fragment survives a power
            // cut, not only a crash of the process.
            .and_then(|()| {
                open.journal
                    .write_all(line.as_bytes())
                    .map_err(io("append", &jname))
            })
            .and_then(|()| open.journal.sync_data().map_err(io("fsync", &jname)));
        if let Err(e) = written {
            // All or nothing: cut the file and the journal back to the last whole fragment
            // (a full disk writes part of a fragment, or of a journal line).
            let cut = open
                .file
                .set_len(open.bytes)
                .and_then(|()| open.file.seek(SeekFrom::Start(open.bytes)).map(drop))
                .and_then(|()| open.journal.set_len(open.journal_len));
            if let Err(cut) = cut {
                tracing::error!(segment = %name, error = %cut, "cannot cut back a failed fragment; it is cut at sealing");
            }
            return Err(e);
        }
        let (id, offset) = (open.id, open.bytes);
        open.bytes += len;
        open.journal_len += line.len() as u64;
        open.end = end;
        open.fragments += 1;
        self.publish_writer_bytes(&w);
        drop(w);
        self.live_fragment(id, offset, len, end, starts_with_keyframe || offset == 0);
        self.retry_unlogged_gaps();
        Ok(())
    }

    /// File-sink layout: the name the open segment's file will have in the output directory.
    pub fn open_file_name(&self) -> Option<String> {
        lock(&self.writer)
            .open
            .as_ref()
            .and_then(|o| o.header.name.clone())
    }

    /// Bytes and fragments of the open segment.
    pub fn open_progress(&self) -> Option<(u64, u64)> {
        lock(&self.writer)
            .open
            .as_ref()
            .map(|o| (o.bytes, o.fragments))
    }

    /// Seals the open segment: fsync, atomic rename to its final name, fsync of the directory.
    /// An open segment without any fragment is removed instead.
    pub fn seal(&self) -> Result<Option<SegmentMeta>, CacheError> {
        let mut w = lock(&self.writer);
        self.retry_unsealed(&mut w);
        let OpenSeg {
            id,
            header,
            file,
            journal,
            bytes,
            end,
            fragments,
            ..
        } = w.open.take().ok_or(CacheError::NotOpen)?;
        drop(journal);
        if fragments == 0 {
            let name = open_name(id);
            let jname = journal_name(id);
            drop(file);
            self.live_sealed(id);
            self.dir.remove_file(&name).map_err(io("remove", &name))?;
            self.dir.remove_file(&jname).map_err(io("remove", &jname))?;
            return Ok(None);
        }
        let segment = Unsealed {
            id,
            header,
            end,
            bytes,
        };
        let result = match self.finish_seal(Some(file), &segment) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) => {
                tracing::warn!(segment = id.0, error = %e, "seal failed; retried with the next segment");
                w.unsealed.push(segment);
                Err(e)
            }
        };
        self.publish_writer_bytes(&w);
        drop(w);
        // Sealed or waiting to be: either way it is no longer the open segment.
        self.live_sealed(id);
        result
    }

    /// Seals what is open or left unsealed (shutdown).
    pub(super) fn seal_for_close(&self) -> Result<(), CacheError> {
        let open = lock(&self.writer).open.is_some();
        if open {
            self.seal()?;
        } else {
            let mut w = lock(&self.writer);
            self.retry_unsealed(&mut w);
            self.publish_writer_bytes(&w);
        }
        Ok(())
    }

    /// Truncate to the journaled length, fsync, rename into place, enter it in the index;
    /// then the directory fsync and the journal's removal, whose failure start-up
    /// reconciliation repairs.
    fn finish_seal(&self, file: Option<File>, u: &Unsealed) -> Result<SegmentMeta, CacheError> {
        let name = open_name(u.id);
        let file = match file {
            Some(f) => f,
            None => self
                .dir
                .open_with(&name, OpenOptions::new().write(true))
                .map_err(io("open", &name))?,
        };
        // A fragment whose failed write could not be cut back is cut here.
        file.set_len(u.bytes).map_err(io("truncate", &name))?;
        file.sync_all().map_err(io("fsync", &name))?;
        drop(file);
        let meta = sealed_meta(u.id, &u.header, u.end, u.bytes);
        match &self.files {
            None => self
                .dir
                .rename(&name, &self.dir, &meta.file_name)
                .map_err(io("rename", &name))?,
            Some(files) => files.place(&self.dir, &name, &meta)?,
        }
        {
            let mut index = lock(&self.index);
            index.sealed_bytes += meta.bytes;
            index.sealed.insert(meta.id, meta.clone());
        }
        let jname = journal_name(u.id);
        let rest = sync_dir(&self.dir)
            .and_then(|()| self.dir.remove_file(&jname).map_err(io("remove", &jname)));
        if let Err(e) = rest {
            tracing::warn!(segment = %meta.file_name, error = %e, "sealed, but the directory fsync or the journal removal failed; start-up reconciles it");
        }
        Ok(meta)
    }

    fn retry_unsealed(&self, w: &mut Writer) {
        for u in std::mem::take(&mut w.unsealed) {
            match self.finish_seal(None, &u) {
                Ok(meta) => {
                    tracing::info!(segment = %meta.file_name, "sealed after an earlier failure");
                    self.publish_live();
                }
                Err(_) => w.unsealed.push(u),
            }
        }
    }
}

/// Writes every part in as few system calls as the kernel allows: a fragment is dozens of
/// slices (boxes and spliced frame payloads), and one write per slice costs more than the copy.
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0); // skips empty leading parts
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
