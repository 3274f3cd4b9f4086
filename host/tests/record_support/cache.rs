//! What a recorder left in its cache directory: sealed segments by name, the files, the gaps.

use std::path::{Path, PathBuf};

/// The cache directory of sink N (1-based) of the default instance of `write_topology`'s
/// topology (`<topology>.<instance>.<sink>`).
pub fn cache_dir(data_dir: &Path, sink: usize) -> PathBuf {
    data_dir.join(format!(
        "var/lib/mediagraph/cache/RecordTest.default.sink{sink}"
    ))
}

/// A sealed segment as named on disk: `<id>_<run>_<seq>_<start>_<end>_<codecs>.<ext>`.
#[derive(Clone, Debug)]
pub struct Seg {
    pub path: PathBuf,
    pub id: u64,
    pub run: u64,
    pub seq: u64,
    pub start: i64,
    pub end: i64,
}

pub fn sealed(dir: &Path) -> Vec<Seg> {
    let mut v: Vec<Seg> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let p: Vec<&str> = name.splitn(6, '_').collect();
            if p.len() != 6 || !name.ends_with(".mp4") {
                return None;
            }
            Some(Seg {
                path: e.path(),
                id: p[0].parse().ok()?,
                run: p[1].parse().ok()?,
                seq: p[2].parse().ok()?,
                start: p[3].parse().ok()?,
                end: p[4].parse().ok()?,
            })
        })
        .collect();
    v.sort_by_key(|s| s.id);
    v
}

pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn gaps(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("gaps.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
