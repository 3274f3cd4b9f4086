//! Power-loss ordering of the cache, proven from the system calls of a real recording: the
//! test camera is recorded by `mediagraph run` under `strace -f -y` (file descriptors shown
//! with their paths), and the trace is checked against the cache's invariants for every
//! segment. A kill -9 only loses what the page cache had not written; a power cut also loses
//! what was never synced, so the order of writes and syncs is what this test looks at.
//! Needs strace (tests/install-peers.sh installs it).

mod record_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use record_support::*;

const STARTUP: Duration = Duration::from_secs(120);

/// One completed system call: its name, its arguments and result as strace printed them.
#[derive(Debug)]
struct Call {
    name: String,
    text: String,
}

/// The calls of every thread in the order they completed (an `<unfinished ...>` call is
/// joined with its `<... resumed>` rest, at the rest's place).
fn calls(trace: &str) -> Vec<Call> {
    let mut started: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            started.insert(pid.to_owned(), head.to_owned());
            continue;
        }
        let text = if let Some(tail) = rest.strip_prefix("<... ") {
            let tail = tail.split_once(" resumed>").map_or(tail, |(_, t)| t);
            format!("{}{tail}", started.remove(pid).unwrap_or_default())
        } else {
            rest.to_owned()
        };
        if let Some((name, _)) = text.split_once('(') {
            out.push(Call {
                name: name.to_owned(),
                text,
            });
        }
    }
    out
}

/// The path strace printed for the call's first argument (`fd</path>`), if any.
fn first_fd_path(text: &str) -> Option<&str> {
    let args = text.split_once('(')?.1;
    let start = args.find('<')?;
    let end = args[start..].find('>')? + start;
    if args[..start].contains(',') {
        return None; // the first argument is not a descriptor
    }
    Some(&args[start + 1..end])
}

/// Per segment `.open`/`.journal`: header and directory entries synced before the first
/// fragment; each fragment's bytes synced before its journal line; each journal line synced
/// before the next fragment is written and before the seal; the directory synced after the
/// seal's rename. Returns the number of fragments checked.
fn check_ordering(calls: &[Call], dir: &Path) -> usize {
    let dir = dir.to_str().unwrap();
    #[derive(Default)]
    struct Seg {
        created: u8,
        header: bool,
        header_synced: bool,
        dir_synced: bool,
        data_dirty: bool,
        journal_dirty: bool,
        fragments: usize,
        renamed: bool,
        dir_synced_after_rename: bool,
    }
    let mut segs: HashMap<String, Seg> = HashMap::new();
    for (i, c) in calls.iter().enumerate() {
        // The call, without the bytes it wrote.
        let here = || format!("call {i}: {}", c.text.chars().take(200).collect::<String>());
        let syncs = matches!(c.name.as_str(), "fsync" | "fdatasync");
        let writes = matches!(c.name.as_str(), "write" | "writev" | "pwrite64" | "pwritev");
        if c.name.starts_with("openat") && c.text.contains("O_CREAT") {
            if let Some(id) = c
                .text
                .rsplit('<')
                .next()
                .and_then(|p| p.strip_suffix('>'))
                .and_then(|p| p.strip_prefix(dir))
                .and_then(|p| p.strip_prefix('/'))
                .and_then(|n| n.strip_suffix(".open").or(n.strip_suffix(".journal")))
            {
                segs.entry(id.to_owned()).or_default().created += 1;
            }
            continue;
        }
        if c.name.starts_with("rename") {
            if let Some(s) = segs
                .iter_mut()
                .find(|(id, _)| c.text.contains(&format!("\"{id}.open\"")))
                .map(|(_, s)| s)
            {
                assert!(
                    !s.data_dirty && !s.journal_dirty,
                    "seal before sync: {}",
                    here()
                );
                s.renamed = true;
            }
            continue;
        }
        let Some(path) = first_fd_path(&c.text) else {
            continue;
        };
        if syncs && path == dir {
            for s in segs.values_mut() {
                if s.created == 2 && s.header {
                    s.dir_synced = true;
                }
                if s.renamed {
                    s.dir_synced_after_rename = true;
                }
            }
            continue;
        }
        let Some(name) = path.strip_prefix(dir).and_then(|p| p.strip_prefix('/')) else {
            continue;
        };
        if let Some(id) = name.strip_suffix(".open") {
            let s = segs.entry(id.to_owned()).or_default();
            if writes {
                assert!(
                    s.header_synced && s.dir_synced,
                    "fragment written before the journal header and directory entries were synced: {}",
                    here()
                );
                assert!(
                    !s.journal_dirty,
                    "next fragment written before the journal line was synced: {}",
                    here()
                );
                s.data_dirty = true;
            } else if syncs {
                s.data_dirty = false;
            }
        } else if let Some(id) = name.strip_suffix(".journal") {
            let s = segs.entry(id.to_owned()).or_default();
            if writes {
                if s.header {
                    assert!(
                        !s.data_dirty,
                        "journal line before its bytes were synced: {}",
                        here()
                    );
                    s.fragments += 1;
                }
                s.header = true;
                s.journal_dirty = true;
            } else if syncs {
                if !s.journal_dirty {
                    continue;
                }
                s.journal_dirty = false;
                if s.fragments == 0 {
                    s.header_synced = true;
                }
            }
        }
    }
    for (id, s) in &segs {
        assert!(
            s.renamed && s.dir_synced_after_rename,
            "segment {id}: sealed {} with the directory synced after {}",
            s.renamed,
            s.dir_synced_after_rename
        );
    }
    segs.values().map(|s| s.fragments).sum()
}

#[test]
fn every_journal_line_and_directory_entry_is_durable_before_the_next_fragment() {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "strace is required (tests/install-peers.sh installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _camera = camera(port, &[]);
    let topology = write_topology(
        tmp.path(),
        &format!("rtsp://127.0.0.1:{port}/cam1"),
        64,
        "PT30S",
    );
    let data = tmp.path().join("data");
    let trace = tmp.path().join("trace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-y", "--seccomp-bpf", "-s", "64", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=openat,openat2,write,writev,pwrite64,pwritev,fsync,fdatasync,rename,renameat,renameat2",
        ])
        .arg(env!("CARGO_BIN_EXE_mediagraph"))
        .arg("run")
        .arg(&topology)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "info");
    let mut rec = Proc::spawn(cmd);
    rec.wait_event("RecordingStarted", STARTUP);
    std::thread::sleep(Duration::from_secs(6));
    // SIGINT to the recorder itself (strace's child), which seals its segment and exits.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", rec.pid())).unwrap();
    let recorder = children.split_whitespace().next().expect("strace's child");
    assert!(
        Command::new("kill")
            .args(["-INT", recorder])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the recorder to exit", Duration::from_secs(30), || {
        !rec.is_running()
    });

    let dir = cache_dir(&data, 1);
    let segs = sealed(&dir);
    assert!(!segs.is_empty(), "{:?}\n{}", files(&dir), rec.log());
    let fragments = check_ordering(&calls(&std::fs::read_to_string(&trace).unwrap()), &dir);
    assert!(fragments >= 3, "only {fragments} fragments traced");
}
