//! `mediagraph assets list`: the binary lists what the local store holds, with gaps, and
//! rejects bad store configuration with a message that names the problem.

use std::process::Command;

use mediagraph::time::Ticks90k;
use mediagraph::upload::local::LocalStore;
use mediagraph::upload::{AssetStore, SegmentFacts, SegmentUpload};

fn mediagraph() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.env_remove("MEDIAGRAPH_AZURE_CONNECTION_STRING");
    cmd
}

#[tokio::test]
async fn assets_list_shows_segments_in_time_order_with_the_gap() {
    let cache = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = LocalStore::new(root.path().to_owned());
    for (seq, start) in [
        (2u64, 1_800_000_060i64),
        (0, 1_800_000_000),
        (1, 1_800_000_030),
    ] {
        let path = cache.path().join(format!("{seq}.mp4"));
        std::fs::write(&path, vec![seq as u8; 1000 + seq as usize]).unwrap();
        let start = if seq == 2 { start + 30 } else { start };
        store
            .put_segment(SegmentUpload {
                facts: SegmentFacts {
                    asset: "cam".into(),
                    run: 1,
                    sequence: seq,
                    start: Ticks90k::from_secs(start),
                    end: Ticks90k::from_secs(start + 30),
                    codecs: "avc1.64001f".into(),
                    extension: "mp4".into(),
                },
                file: std::fs::File::open(&path).unwrap(),
                bytes: 1000 + seq,
            })
            .await
            .unwrap();
    }
    let out = mediagraph()
        .args(["assets", "list", "cam", "--asset-store"])
        .arg(format!("file://{}", root.path().display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].ends_with("\t1000\tcam/20270115T080000Z-r0000000001-s0000000000.mp4"),
        "{text}"
    );
    assert!(
        lines[1].ends_with("\t1001\tcam/20270115T080030Z-r0000000001-s0000000001.mp4"),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "gap\t2027-01-15T08:01:00.000Z\t2027-01-15T08:01:30.000Z\t30.000 s"
    );
    assert_eq!(lines[4], "3 segments");
}

#[test]
fn bad_store_configuration_is_a_clear_error() {
    let out = mediagraph()
        .args(["assets", "list", "cam", "--asset-store", "s3://bucket"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported scheme \"s3\""), "{err}");

    let out = mediagraph()
        .args([
            "assets",
            "list",
            "cam",
            "--azure-connection-string",
            "AccountName=acct",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs AccountKey or SharedAccessSignature"),
        "{err}"
    );
}
