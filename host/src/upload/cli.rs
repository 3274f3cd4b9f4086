//! `mediagraph assets list ASSET`: what an asset store holds for one asset, in time order, with
//! the gaps between segments, so an operator can check a recording without cloud tooling.

use std::io::Write;

use super::config::StoreArgs;
use super::{SEAM_TOLERANCE, StoredBlob, UploadError};
use crate::time::Ticks90k;

#[derive(clap::Subcommand)]
pub enum AssetsCommand {
    /// List an asset's segments (time order) and the gaps between them.
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The resolved asset name (the blob-name prefix).
    pub asset: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(cmd: &AssetsCommand, out: &mut dyn Write) -> Result<(), UploadError> {
    match cmd {
        AssetsCommand::List(args) => {
            let store = args.store.open()?;
            let blobs = store.list_asset(&args.asset).await?;
            write_listing(&blobs, out).map_err(|source| UploadError::Local {
                path: "<stdout>".into(),
                source,
            })
        }
    }
}

/// `start end bytes name` per blob; a `gap start end seconds` line wherever one blob's end and
/// the next one's start are further apart than [`SEAM_TOLERANCE`] (a negative gap is an
/// overlap).
fn write_listing(blobs: &[StoredBlob], out: &mut dyn Write) -> std::io::Result<()> {
    let mut previous_end: Option<Ticks90k> = None;
    for blob in blobs {
        let Some((start, end)) = blob.span() else {
            writeln!(out, "-\t-\t{}\t{}", blob.bytes, blob.name)?;
            continue;
        };
        if let Some(prev) = previous_end
            && (start - prev).abs() > SEAM_TOLERANCE
        {
            let secs = (start - prev).as_secs_f64();
            writeln!(
                out,
                "gap\t{}\t{}\t{secs:.3} s",
                prev.to_rfc3339_millis(),
                start.to_rfc3339_millis()
            )?;
        }
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            start.to_rfc3339_millis(),
            end.to_rfc3339_millis(),
            blob.bytes,
            blob.name
        )?;
        previous_end = Some(end);
    }
    writeln!(out, "{} segments", blobs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::SegmentFacts;

    fn blob(start: i64, end: i64) -> StoredBlob {
        let facts = SegmentFacts {
            asset: "a".into(),
            run: 1,
            sequence: 0,
            start: Ticks90k::from_secs(start),
            end: Ticks90k::from_secs(end),
            codecs: "avc1".into(),
            extension: "mp4".into(),
        };
        StoredBlob {
            name: facts.blob_name(),
            bytes: 10,
            metadata: facts.metadata(None),
        }
    }

    #[test]
    fn listing_shows_segments_and_the_gaps_between_them() {
        let mut out = Vec::new();
        // The second segment starts a few ticks before the first ends (clock slew): one
        // recording, no gap line.
        let mut second = blob(30, 60);
        second
            .metadata
            .insert("start".into(), (Ticks90k::from_secs(30).0 - 3).to_string());
        write_listing(&[blob(0, 30), second, blob(90, 120)], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[2],
            "gap\t1970-01-01T00:01:00.000Z\t1970-01-01T00:01:30.000Z\t30.000 s"
        );
        assert!(lines[3].starts_with("1970-01-01T00:01:30.000Z\t1970-01-01T00:02:00.000Z\t10\ta/"));
        assert_eq!(lines[4], "3 segments");
    }
}
