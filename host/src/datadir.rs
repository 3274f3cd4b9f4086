//! Exclusive ownership of a data directory: one `mediagraph serve` or `run` per directory.
//!
//! Owns the lock file `DATA_DIR/mediagraph.lock`, held with `flock` for the life of the
//! process, so the kernel releases it when the process ends however it ends (kill -9
//! included) and a stale lock file never blocks a restart. Must not hold anything else: the
//! state file and the caches are other rooms'.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "mediagraph.lock";

/// Exit status when another process owns the data directory.
pub const EXIT_LOCKED: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {} is in use by another mediagraph process{}; stop it first or use another --data-dir",
        dir.display(),
        holder.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock data directory {}: {op} {}: {source}", dir.display(), file.display())]
    Io {
        dir: PathBuf,
        file: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

/// Held while the process owns the directory; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates the directory if needed and takes the lock without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let file_path = dir.join(LOCK_FILE);
        let io = |op| {
            let (dir, file) = (dir.to_owned(), file_path.clone());
            move |source| LockError::Io {
                dir,
                file,
                op,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create directory for"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&file_path)
            .map_err(io("open"))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Locked {
                    dir: dir.to_owned(),
                    holder,
                });
            }
            Err(e) => return Err(io("flock")(e.into())),
        }
        // The pid is only for the message a second process prints; the lock is the flock.
        file.set_len(0).map_err(io("truncate"))?;
        file.rewind().map_err(io("rewind"))?;
        writeln!(file, "{}", std::process::id()).map_err(io("write"))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        match DataDirLock::acquire(dir.path()) {
            Err(LockError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()))
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once the holder is gone");
    }
}
