//! A directory of sealed segment files that implements the uploader's `SegmentSource`, for the
//! upload tests that run without the recorder. Each segment is `<id>.mp4` plus `<id>.json`
//! (its `PendingSegment` facts); an `<id>.uploaded` marker, written and fsynced, records the
//! upload durably, so a killed process leaves the same state the cache would.

use std::path::{Path, PathBuf};

use mediagraph::time::Ticks90k;
use mediagraph::upload::UploadError;
use mediagraph::upload::uploader::{PendingSegment, SegmentSource};

pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create segment dir");
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Adds a sealed segment with the given content; `start_secs` is its UTC start.
    pub fn add(
        &self,
        id: u64,
        start_secs: i64,
        length_secs: i64,
        content: &[u8],
    ) -> PendingSegment {
        let seg = PendingSegment {
            id,
            run: 1,
            sequence: id,
            start: Ticks90k::from_secs(start_secs),
            end: Ticks90k::from_secs(start_secs + length_secs),
            bytes: content.len() as u64,
            codecs: "avc1.64001f".into(),
            file_name: format!("{id:08}.mp4"),
        };
        std::fs::write(self.dir.join(&seg.file_name), content).expect("write segment");
        let facts = serde_json::json!({
            "id": seg.id, "run": seg.run, "sequence": seg.sequence, "start": seg.start.0,
            "end": seg.end.0, "bytes": seg.bytes, "codecs": seg.codecs, "file": seg.file_name,
        });
        std::fs::write(self.dir.join(format!("{id:08}.json")), facts.to_string())
            .expect("write facts");
        seg
    }

    /// Removes a segment as an evictor would.
    pub fn evict(&self, id: u64) {
        let _ = std::fs::remove_file(self.dir.join(format!("{id:08}.mp4")));
        let _ = std::fs::remove_file(self.dir.join(format!("{id:08}.json")));
    }

    pub fn is_uploaded(&self, id: u64) -> bool {
        self.dir.join(format!("{id:08}.uploaded")).exists()
    }

    fn read(&self, json: &Path) -> Option<PendingSegment> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).ok()?).ok()?;
        Some(PendingSegment {
            id: v["id"].as_u64()?,
            run: v["run"].as_u64()?,
            sequence: v["sequence"].as_u64()?,
            start: Ticks90k(v["start"].as_i64()?),
            end: Ticks90k(v["end"].as_i64()?),
            bytes: v["bytes"].as_u64()?,
            codecs: v["codecs"].as_str()?.to_owned(),
            file_name: v["file"].as_str()?.to_owned(),
        })
    }
}

impl SegmentSource for DirSource {
    fn sealed_pending(&self) -> Vec<PendingSegment> {
        let mut out: Vec<PendingSegment> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| self.read(p))
            .filter(|s| !self.is_uploaded(s.id))
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    fn open_sealed(&self, id: u64) -> Result<std::fs::File, UploadError> {
        let path = self.dir.join(format!("{id:08}.mp4"));
        std::fs::File::open(&path).map_err(|source| UploadError::ReadSegment {
            segment: path.display().to_string(),
            source,
        })
    }

    fn mark_uploaded(&self, id: u64) -> Result<(), UploadError> {
        let path = self.dir.join(format!("{id:08}.uploaded"));
        let f = std::fs::File::create(&path)
            .map_err(|e| UploadError::Cache(format!("{}: {e}", path.display())))?;
        f.sync_all()
            .map_err(|e| UploadError::Cache(format!("{}: {e}", path.display())))
    }
}
