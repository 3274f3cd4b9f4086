//! The service's durable state: every topology, every graph instance and whether it should be
//! active, in one JSON file, `DATA_DIR/state.json`.
//!
//! Crash safety: a change is written whole to `state.json.new`, fsynced, renamed over
//! `state.json`, and the directory is fsynced, so after a crash at any moment the file holds
//! the state before or after the change, never a mix. A file that cannot be read or parsed is
//! an error naming it; it is never replaced by an empty state. The file holds instance
//! parameters (SecretString values included), so it is created readable by its owner only.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Name of the state file inside the data directory.
pub const STATE_FILE: &str = "state.json";
/// Version of the file's layout; a file of another version is refused, not guessed at.
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {}: cannot {op} it: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error(
        "state file {} is not a valid mediagraph state ({source}); it was left as it is: repair or move it away, then start again",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("state file {} has format {found}, this build reads format {FORMAT}", path.display())]
    Format { path: PathBuf, found: u32 },
}

/// When an object was created and last changed (LVA's `systemData`), RFC 3339 UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemData {
    pub created_at: String,
    pub last_modified_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTopology {
    /// The topology in LVA's canonical form (`Topology::to_json`), `@apiVersion` included.
    pub document: Value,
    pub system_data: SystemData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Desired {
    Inactive,
    Active,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredInstance {
    pub topology_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Vec<Parameter>,
    /// Survives restarts: an instance that should be active is activated again at start.
    pub desired: Desired,
    pub system_data: SystemData,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub topologies: BTreeMap<String, StoredTopology>,
    pub instances: BTreeMap<String, StoredInstance>,
}

/// The state file of one data directory.
#[derive(Clone, Debug)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The stored state; an empty one when no file exists yet (a new data directory).
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    format: FORMAT,
                    ..State::default()
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path,
                    op: "read",
                    source,
                });
            }
        };
        let state: State = serde_json::from_slice(&text).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        if state.format != FORMAT {
            return Err(StoreError::Format {
                path,
                found: state.format,
            });
        }
        Ok(state)
    }

    /// Replaces the stored state with `state`, durably (see the module comment). Blocking:
    /// call it from the blocking pool.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let path = self.path();
        let new = self.dir.join(format!("{STATE_FILE}.new"));
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, op, source }
        };
        let text = serde_json::to_vec_pretty(state).expect("the state serializes");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&new)
            .map_err(io("create", &new))?;
        file.write_all(&text).map_err(io("write", &new))?;
        file.sync_all().map_err(io("fsync", &new))?;
        drop(file);
        std::fs::rename(&new, &path).map_err(io("rename onto", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync the directory of", &path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State {
            format: FORMAT,
            ..State::default()
        };
        let sd = SystemData {
            created_at: "2026-12-04T00:00:00.000Z".into(),
            last_modified_at: "2026-12-04T00:00:00.000Z".into(),
        };
        s.topologies.insert(
            "t".into(),
            StoredTopology {
                document: serde_json::json!({"name": "t"}),
                system_data: sd.clone(),
            },
        );
        s.instances.insert(
            "i".into(),
            StoredInstance {
                topology_name: "t".into(),
                description: None,
                parameters: vec![Parameter {
                    name: "rtspUrl".into(),
                    value: "rtsp://x/".into(),
                }],
                desired: Desired::Active,
                system_data: sd,
            },
        );
        s
    }

    #[test]
    fn a_saved_state_loads_back_equal_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert!(file.load().unwrap().instances.is_empty());
        file.save(&sample()).unwrap();
        assert_eq!(file.load().unwrap(), sample());
        assert!(!dir.path().join("state.json.new").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the state file holds secrets: owner only");
    }

    #[test]
    fn an_unreadable_state_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        std::fs::write(file.path(), b"{\"format\":1,\"topologies\":{").unwrap();
        let err = file.load().unwrap_err().to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert_eq!(
            std::fs::read(file.path()).unwrap(),
            b"{\"format\":1,\"topologies\":{"
        );
        std::fs::write(
            file.path(),
            b"{\"format\":7,\"topologies\":{},\"instances\":{}}",
        )
        .unwrap();
        assert!(matches!(
            file.load(),
            Err(StoreError::Format { found: 7, .. })
        ));
    }
}
