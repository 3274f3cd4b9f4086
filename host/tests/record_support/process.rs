//! The processes a test drives: any child process (killed when dropped), the
//! `mediagraph run` recorder, waiting on its log and events, and what it prints.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process that is killed when dropped, so a failing test leaves nothing behind.
pub struct Proc {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    /// SIGINT, then waits (bounded) for a clean exit; returns the exit status code.
    pub fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop within 20 s after SIGINT:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the process to exit by itself; returns the exit status code.
    pub fn wait_exit(mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9: no chance to clean up.
    pub fn crash(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The LVA events the recorder logged, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        events_in(&self.log())
    }
}

/// The LVA events in a recorder's log, parsed.
pub fn events_in(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| l.find("{\"eventType\"").map(|i| &l[i..]))
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect()
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn require(tool: &str, package: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{tool} is required (Debian package {package}; .ci/run installs it)"
    );
}

/// `mediagraph run` with progress lines every second.
pub fn recorder(topology: &Path, data_dir: &Path, params: &[&str]) -> Proc {
    recorder_with(topology, data_dir, params, &[])
}

/// Like [`recorder`], with extra command-line arguments (e.g. the asset store).
pub fn recorder_with(topology: &Path, data_dir: &Path, params: &[&str], extra: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediagraph"));
    cmd.arg("run")
        .arg(topology)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--progress-secs", "1"]);
    for p in params {
        cmd.args(["--param", p]);
    }
    cmd.args(extra);
    cmd.env("RUST_LOG", "info");
    Proc::spawn(cmd)
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Proc {
    /// Waits until the recorder logged an event of this type (e.g. `RecordingStarted`); the
    /// first start of a data directory compiles the plugins, which takes a while in debug builds.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(kind) {
            assert!(
                self.is_running(),
                "recorder exited while waiting for {kind}:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "no {kind} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The address from the `demo: playback page at http://ADDR/` line on stdout.
pub fn page_address(demo: &mut Proc) -> std::net::SocketAddr {
    let stdout = demo.child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no playback page line on stdout:\n{}", demo.log()));
        if let Some(rest) = line.strip_prefix("demo: playback page at http://") {
            let addr = rest.split('/').next().unwrap();
            return addr
                .parse()
                .unwrap_or_else(|_| panic!("bad address in {line:?}"));
        }
    }
}

/// The LVA diagnostics of one kind (e.g. `MediaFormatError`) among `events`.
pub fn diagnostics<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    let wanted = format!("Microsoft.Media.Graph.Diagnostics.{kind}");
    events.iter().filter(|e| e["eventType"] == wanted).collect()
}

/// An event's `eventTime` (RFC 3339, UTC, milliseconds) as seconds since midnight.
pub fn event_secs(event: &serde_json::Value) -> f64 {
    let t = event["eventTime"].as_str().expect("eventTime");
    let clock = t
        .split('T')
        .nth(1)
        .and_then(|c| c.strip_suffix('Z'))
        .unwrap_or_else(|| panic!("eventTime {t}"));
    clock
        .split(':')
        .map(|p| p.parse::<f64>().unwrap_or_else(|_| panic!("eventTime {t}")))
        .fold(0.0, |acc, p| acc * 60.0 + p)
}
