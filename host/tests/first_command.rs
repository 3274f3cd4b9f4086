//! The README's first command, run as a new user runs it: from a fresh `git clone` of this
//! repository (its committed `HEAD`), exactly as the README writes it, until the demo's playback
//! page answers over HTTP; then Ctrl-C (SIGINT to the process group, as a terminal sends it)
//! must stop the demo cleanly. So the README, the workspace layout and the build cannot drift
//! apart.
//!
//! The clone builds into `target/first-command` of this checkout. `tests/run.sh` builds the
//! release binary there before `cargo test`, so the clone finds every dependency compiled and
//! only recompiles the workspace's own crates (their sources are newer in a fresh clone). Without
//! that step this test does the whole cold release build itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the demo prints once its page is served; the README quotes the whole line.
const PAGE_LINE: &str = "demo: playback page at http://";
/// Building and starting: minutes with `tests/run.sh`'s prebuilt dependencies, about half an
/// hour for a cold release build on a 2-core machine.
const BUILD_AND_START: Duration = Duration::from_secs(45 * 60);
/// Ctrl-C seals the open segment and flushes the local upload: seconds.
const STOP: Duration = Duration::from_secs(60);

#[test]
fn the_readme_first_command_serves_the_playback_page_from_a_fresh_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the repository");
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("mediagraph");
    let git = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(root)
        .arg(&clone)
        .status()
        .expect("git runs (Debian package git)");
    assert!(git.success(), "git clone {} failed", root.display());

    let readme = std::fs::read_to_string(clone.join("README.md")).expect("README.md in the clone");
    let command = first_command(&readme);
    let promised = promised_page(&readme);
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(
        words[..2],
        ["cargo", "run"],
        "the README's first command is not a `cargo run`: {command}"
    );
    // The demo serves its page on a fixed port; a leftover demo would make this test fail for
    // a reason that has nothing to do with the README.
    let port: SocketAddr = promised
        .trim_start_matches(PAGE_LINE)
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no ADDR:PORT in the README's page line {promised:?}"));
    drop(TcpListener::bind(port).unwrap_or_else(|e| {
        panic!("{port} is taken ({e}): the README's first command serves its page there")
    }));

    let mut cmd = Command::new(words[0]);
    cmd.args(&words[1..])
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", root.join("target/first-command"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // What `cargo test` (and rustup's proxy, RUSTUP_TOOLCHAIN) set for this test, and a new
    // user's shell does not: rustup picks the toolchain for the clone as it would for the user,
    // and the package comes from the clone's manifests.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key == "CARGO"
            || key == "RUSTUP_TOOLCHAIN"
            || key == "OUT_DIR"
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_CRATE_")
            || key.starts_with("CARGO_TARGET_TMPDIR")
            || key == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let mut demo = Group::spawn(cmd);

    let started = Instant::now();
    let page_line = demo
        .stdout_line(|l| l.starts_with(PAGE_LINE), BUILD_AND_START)
        .unwrap_or_else(|why| {
            panic!(
                "`{command}` in a fresh clone: no playback page after {:?} ({why}):\n{}",
                started.elapsed(),
                demo.log_tail()
            )
        });
    assert!(
        page_line.starts_with(&promised),
        "the README promises {promised:?}, the demo printed {page_line:?}"
    );

    let page = get(port, "/");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("<video"),
        "GET http://{port}/ answered:\n{page}"
    );

    demo.interrupt();
    let status = demo.wait(STOP).unwrap_or_else(|| {
        panic!(
            "the demo did not stop within {STOP:?} of Ctrl-C:\n{}",
            demo.log_tail()
        )
    });
    assert!(status.success(), "Ctrl-C: {status}\n{}", demo.log_tail());
    demo.stdout_line(|l| l.starts_with("demo: the recording is in"), STOP)
        .unwrap_or_else(|why| panic!("no closing line after Ctrl-C ({why}):\n{}", demo.log_tail()));
}

/// The first command of the README's first `sh` block, as a user would copy it.
fn first_command(readme: &str) -> String {
    let line = readme
        .lines()
        .skip_while(|l| l.trim() != "```sh")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("the README opens with a ```sh block holding a command");
    // Run without a shell: the command must mean the same in any shell.
    assert!(
        !line.contains(['\'', '"', '$', ';', '|', '&', '<', '>', '`', '\\', '*']),
        "the README's first command needs a shell to mean what it says: {line}"
    );
    line.to_owned()
}

/// The page line the README says the demo prints (`demo: playback page at http://ADDR/`).
fn promised_page(readme: &str) -> String {
    let start = readme
        .find(&format!("`{PAGE_LINE}"))
        .expect("the README quotes the demo's page line")
        + 1;
    let len = readme[start..].find('`').expect("a closing backtick");
    readme[start..start + len].to_owned()
}

/// One HTTP/1.1 GET with `Connection: close`; the whole answer, head and body, as text.
fn get(addr: SocketAddr, target: &str) -> String {
    let mut s = TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("connect to the playback page at {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    String::from_utf8_lossy(&raw).into_owned()
}

/// The command and everything it starts (cargo, rustc, the demo), as one process group that
/// is killed when dropped, so a failing test leaves nothing running.
struct Group {
    child: Child,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Group {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, stdout) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (mut err, sink) = (child.stderr.take().expect("piped"), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The first line on stdout that `wanted` accepts, or why there is none.
    fn stdout_line(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("wait");
                    return Err(format!("stdout closed, exit {status}"));
                }
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    return Err("timed out".into());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn interrupt(&self) {
        self.signal("-INT");
    }

    fn signal(&self, sig: &str) {
        let group = format!("-{}", self.child.id());
        let ok = Command::new("kill")
            .args([sig, "--", &group])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} -- {group} failed");
    }

    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The end of stderr: cargo's build output, then the demo's log.
    fn log_tail(&self) -> String {
        let err = self.stderr.lock().unwrap();
        let text = String::from_utf8_lossy(&err);
        let cut = text.len().saturating_sub(8192);
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[cut..].to_owned()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}
