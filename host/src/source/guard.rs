//! A camera cannot take the process's memory: what retina holds for one session is bounded.
//!
//! retina 0.4.21 has no limit of its own: its parser accepts any `Content-Length` and its read
//! buffer grows for as long as a message is incomplete, and its H.264/H.265 depacketizers
//! collect an access unit until its last packet, however long that takes. Nothing retina holds
//! is visible from outside, but everything it holds it has read from the session's socket, and
//! the kernel counts that ([`SessionSocket::bytes_read`]). So the bytes read since the last
//! moment retina held nothing bound what it holds now:
//! - while a request is answered (DESCRIBE, SETUP, PLAY), everything read since the request
//!   was sent belongs to its answer: at most [`MAX_RTSP_MESSAGE`] (real answers are a few KiB);
//! - while playing, everything read since the first check after a video frame was handed out
//!   belongs to the next frame (audio and RTCP read in between are handed out too, and count
//!   against it): at most [`MAX_ACCESS_UNIT`]. An RTSP message that never ends while playing
//!   holds back the frames after it, so it is caught by the same bound.
//!
//! retina reads only while it is polled, so the count is checked right after the polls that
//! read: every poll that leaves it waiting for data (that is, once per wake-up: no timer and no
//! wake-up of its own), and, at most every [`CHECK_SPACING`], after a poll that handed out
//! something other than video (so a flood of audio frames cannot hide a video frame that never
//! ends). A check is two system calls. retina is polled with [`few_reads`], so a poll ends
//! after at most [`READS_PER_POLL`] reads and a flood cannot read for long between checks.
//! Past a bound the connection is shut down and the session fails with [`Exceeded`]; dropping
//! it frees retina's buffers, and the source reports it and reconnects after its backoff.
//!
//! Owns: the two bounds, the accounting, and how many reads retina makes per poll. Must not:
//! read or write the socket (it only shuts a connection down past its bound), keep it past the
//! session, add a timer or a wake-up, or end a session for data that was handed out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use retina::codec::CodecItem;
use tokio::time::Instant;

use super::socket::SessionSocket;

/// Largest RTSP answer to a request. A DESCRIBE answer with a long SDP is a few KiB.
pub const MAX_RTSP_MESSAGE: u64 = 1024 * 1024;

/// Most read while playing without a video frame coming out. The largest access units of real
/// cameras (4K keyframes at high bitrates) are a few MiB.
pub const MAX_ACCESS_UNIT: u64 = 16 * 1024 * 1024;

/// Least time between checks made after polls that handed out a non-video item.
pub const CHECK_SPACING: Duration = Duration::from_millis(10);

/// Reads retina may make from its socket in one poll ([`few_reads`]). Two: a wake-up's read
/// and the read that finds the socket empty, so a steady stream needs no extra poll.
pub const READS_PER_POLL: usize = 2;

/// tokio's cooperative budget of a task poll.
const TASK_BUDGET: usize = 128;

/// What was being received when a bound was passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The answer to this RTSP request.
    Answer(&'static str),
    /// Media: the next video frame.
    Playing,
}

/// A session that held more than its bound: `held` bytes read without the answer or frame
/// ending, past `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub phase: Phase,
    pub held: u64,
    pub limit: u64,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { held, limit, .. } = self;
        let mib = limit / (1024 * 1024);
        match self.phase {
            Phase::Answer(method) => write!(
                f,
                "the camera's answer to {method} passed {mib} MiB ({limit} bytes) without ending ({held} bytes read); a real answer is a few KiB"
            ),
            Phase::Playing => write!(
                f,
                "the camera sent {held} bytes without completing a video frame, past the {mib} MiB ({limit} bytes) an access unit may take: an access unit or RTSP message that never ends"
            ),
        }
    }
}

impl std::error::Error for Exceeded {}

/// The accounting, apart from the kernel: bytes read are given to it.
#[derive(Debug)]
struct Account {
    phase: Phase,
    limit: u64,
    /// Bytes read when retina last held nothing of what is being received now.
    baseline: u64,
    /// A video frame was handed out since the last check.
    video_since_check: bool,
}

impl Account {
    fn new(phase: Phase, limit: u64, read: u64) -> Self {
        Self {
            phase,
            limit,
            baseline: read,
            video_since_check: false,
        }
    }

    fn video_frame(&mut self) {
        self.video_since_check = true;
    }

    /// `read`: the socket's bytes read now. After a video frame the count starts again here:
    /// what was read between the frame and now is not counted (it cannot be told apart), so a
    /// breach is seen at most one poll's reading late, and a backlog of complete frames read
    /// at once never counts as one frame.
    fn check(&mut self, read: u64) -> Result<(), Exceeded> {
        if std::mem::take(&mut self.video_since_check) {
            self.baseline = read;
            return Ok(());
        }
        let held = read.saturating_sub(self.baseline);
        if held > self.limit {
            return Err(Exceeded {
                phase: self.phase,
                held,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// The bounds of one session. Without a socket (not found exactly) it checks nothing.
#[derive(Debug)]
pub struct MemoryGuard {
    socket: Option<SessionSocket>,
    account: Account,
    last_check: Instant,
}

impl MemoryGuard {
    /// Before DESCRIBE is sent: the socket is not known yet, and nothing has been read.
    pub fn describing() -> Self {
        Self {
            socket: None,
            account: Account::new(Phase::Answer("DESCRIBE"), MAX_RTSP_MESSAGE, 0),
            last_check: Instant::now(),
        }
    }

    /// The check of DESCRIBE's answer, for [`super::socket::find_socket`], which knows the
    /// socket before DESCRIBE is answered.
    pub fn check_describe(&mut self, socket: &SessionSocket) -> Result<(), Exceeded> {
        match read(socket) {
            Some(read) => self.account.check(read).inspect_err(|_| end(socket)),
            None => Ok(()),
        }
    }

    /// DESCRIBE was answered; `socket` (if found) is watched from now on.
    pub fn described(&mut self, socket: Option<SessionSocket>) {
        self.socket = socket;
    }

    /// Whether the bounds are enforced (the socket was found).
    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// Awaits the answer to `method` (`request` sends it and reads the answer), bounded by
    /// [`MAX_RTSP_MESSAGE`].
    pub async fn request<F: Future>(
        &mut self,
        method: &'static str,
        request: F,
    ) -> Result<F::Output, Exceeded> {
        self.enter(Phase::Answer(method), MAX_RTSP_MESSAGE);
        let mut request = few_reads(Box::pin(request));
        std::future::poll_fn(|cx| match Pin::new(&mut request).poll(cx) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending => match self.check() {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        })
        .await
    }

    /// The playing session's items, bounded by [`MAX_ACCESS_UNIT`].
    pub fn playing<S>(mut self, items: S) -> Guarded<S> {
        self.enter(Phase::Playing, MAX_ACCESS_UNIT);
        Guarded {
            items: few_reads(items),
            guard: self,
        }
    }

    fn enter(&mut self, phase: Phase, limit: u64) {
        let read = self.socket.as_ref().and_then(read).unwrap_or(0);
        self.account = Account::new(phase, limit, read);
    }

    fn check(&mut self) -> Result<(), Exceeded> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        self.last_check = Instant::now();
        match read(socket) {
            Some(read) => self.account.check(read).inspect_err(|_| end(socket)),
            None => {
                self.socket = None;
                Ok(())
            }
        }
    }
}

/// Ends a connection past its bound before the session is dropped. Dropping a playing session
/// hands its connection to retina's TEARDOWN, which would first wait up to 5 s for an answer
/// on it, reading the flood meanwhile; a connection that is shut down fails that at once, and
/// retina tears the session down from a fresh connection instead.
fn end(socket: &SessionSocket) {
    if let Err(e) = socket.shut_down() {
        tracing::debug!(error = %e, "shutting down the connection past its bound");
    }
}

/// The socket's bytes read; `None` when the kernel cannot count them (said once a process).
fn read(socket: &SessionSocket) -> Option<u64> {
    static SAID: AtomicBool = AtomicBool::new(false);
    match socket.bytes_read() {
        Ok(read) => Some(read),
        Err(e) => {
            if !SAID.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot count the bytes read from camera sockets; RTSP message and access unit sizes are not bounded");
            }
            None
        }
    }
}

/// `inner` polled so that it reads from its socket at most [`READS_PER_POLL`] times a poll.
///
/// retina reads as long as data is queued, and every read costs it one unit of tokio's
/// cooperative budget (128 a task poll), so one poll could read 128 times (on loopback, a
/// flood read hundreds of MiB in one poll) before a check sees it. Polled with only
/// [`READS_PER_POLL`] units left, it returns pending after that many reads (tokio wakes the
/// task again at once), and the check runs. The task gets its budget back afterwards, so the
/// rest of the session's poll is not starved.
pub fn few_reads<T>(inner: T) -> FewReads<T> {
    FewReads(inner)
}

pub struct FewReads<T>(T);

impl<F: Future + Unpin> Future for FewReads<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        with_few_reads(cx, |cx| Pin::new(&mut self.0).poll(cx))
    }
}

impl<S: Stream + Unpin> Stream for FewReads<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        with_few_reads(cx, |cx| Pin::new(&mut self.0).poll_next(cx))
    }
}

impl<T> FewReads<T> {
    pub fn get_ref(&self) -> &T {
        &self.0
    }
}

/// Runs `poll` with the task's cooperative budget cut to [`READS_PER_POLL`] units, then
/// restores what the task had. Each unit taken with `poll_proceed` restores the budget it
/// found when dropped, so dropping the last ones taken sets the budget to 1, 2, …, and the
/// first one brings it back to where it was.
fn with_few_reads<R>(cx: &mut Context<'_>, poll: impl FnOnce(&mut Context<'_>) -> R) -> R {
    use tokio::task::coop;
    // On the stack: this runs for every item retina hands out.
    let mut taken: [Option<coop::RestoreOnPending>; TASK_BUDGET] = std::array::from_fn(|_| None);
    let mut n = 0;
    // Outside a runtime or unconstrained, units are free and restore nothing: bounded here.
    while n < TASK_BUDGET && coop::has_budget_remaining() {
        match coop::poll_proceed(cx) {
            Poll::Ready(unit) => {
                taken[n] = Some(unit);
                n += 1;
            }
            Poll::Pending => break,
        }
    }
    let kept = n.saturating_sub(READS_PER_POLL);
    for unit in taken[kept..n].iter_mut().rev() {
        drop(unit.take());
    }
    let output = poll(cx);
    for unit in taken[..kept].iter_mut().rev() {
        drop(unit.take());
    }
    output
}

/// retina's items of a playing session, failing with [`Exceeded`] past [`MAX_ACCESS_UNIT`].
pub struct Guarded<S> {
    items: FewReads<S>,
    guard: MemoryGuard,
}

impl<S> Guarded<S> {
    pub fn get_ref(&self) -> &S {
        self.items.get_ref()
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = Result<CodecItem, retina::Error>> + Unpin,
{
    type Item = Result<S::Item, Exceeded>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.items).poll_next(cx);
        let check = match &poll {
            Poll::Pending => true,
            Poll::Ready(Some(Ok(CodecItem::VideoFrame(_)))) => {
                this.guard.account.video_frame();
                false
            }
            Poll::Ready(Some(_)) => this.guard.last_check.elapsed() >= CHECK_SPACING,
            Poll::Ready(None) => false,
        };
        if check && let Err(e) = this.guard.check() {
            return Poll::Ready(Some(Err(e)));
        }
        poll.map(|item| item.map(Ok))
    }
}

/// Says once per camera that its sessions run without the bounds (their socket was not found
/// exactly), so a camera that reconnects all day does not repeat it.
#[derive(Debug, Default)]
pub struct UnguardedWarning {
    said: bool,
}

impl UnguardedWarning {
    pub fn session(&mut self, guard: &MemoryGuard, subject: &str) {
        if guard.is_active() || std::mem::replace(&mut self.said, true) {
            return;
        }
        tracing::warn!(%subject, "the session's socket was not found exactly: RTSP message and access unit sizes of this camera are not bounded (and reads are not batched)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::socket::tests::session_pair;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn an_answer_may_take_the_limit_and_not_a_byte_more() {
        let mut answer = Account::new(Phase::Answer("DESCRIBE"), MAX_RTSP_MESSAGE, 0);
        assert_eq!(answer.check(4_000), Ok(()));
        assert_eq!(answer.check(MAX_RTSP_MESSAGE), Ok(()));
        let e = answer.check(MAX_RTSP_MESSAGE + 1).unwrap_err();
        assert_eq!(
            e,
            Exceeded {
                phase: Phase::Answer("DESCRIBE"),
                held: MAX_RTSP_MESSAGE + 1,
                limit: MAX_RTSP_MESSAGE
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("DESCRIBE") && text.contains("1 MiB"),
            "{text}"
        );

        // The next request counts from what was read when it was sent.
        let mut setup = Account::new(Phase::Answer("SETUP"), MAX_RTSP_MESSAGE, 5_000);
        assert_eq!(setup.check(5_000 + MAX_RTSP_MESSAGE), Ok(()));
        assert!(setup.check(5_001 + MAX_RTSP_MESSAGE).is_err());
    }

    #[test]
    fn video_frames_restart_the_count_and_nothing_else_does() {
        let mut playing = Account::new(Phase::Playing, MAX_ACCESS_UNIT, 1_000);
        // Frames of 100 KiB, 25 a second, for an hour: over 8 GiB read, never held.
        let mut read = 1_000;
        for _ in 0..25 * 3600 {
            read += 100 * 1024;
            playing.video_frame();
            assert_eq!(playing.check(read), Ok(()));
        }
        // A backlog of 20 MiB of complete frames, read at once: a frame came out, no breach.
        read += 20 * MIB;
        playing.video_frame();
        assert_eq!(playing.check(read), Ok(()));
        // Then only audio and RTCP while a video frame never ends: counted from the last
        // check after a frame.
        let from = read;
        read += MAX_ACCESS_UNIT;
        assert_eq!(playing.check(read), Ok(()));
        read += 1;
        let e = playing.check(read).unwrap_err();
        assert_eq!(
            (e.phase, e.held, e.limit),
            (Phase::Playing, read - from, MAX_ACCESS_UNIT)
        );
        assert!(e.to_string().contains("16 MiB"), "{e}");
    }

    #[test]
    fn a_breach_is_seen_at_most_one_poll_late() {
        // The frame came out, then a poll read 3 MiB of a frame that never ends before the
        // check: those 3 MiB are not counted, the rest is.
        let mut playing = Account::new(Phase::Playing, MAX_ACCESS_UNIT, 0);
        playing.video_frame();
        assert_eq!(playing.check(3 * MIB), Ok(()));
        assert_eq!(playing.check(3 * MIB + MAX_ACCESS_UNIT), Ok(()));
        assert!(playing.check(3 * MIB + MAX_ACCESS_UNIT + 1).is_err());
    }

    /// The guard against a real socket: the answer of a request that never ends is cut off
    /// past the limit, with the bytes the kernel counted.
    #[tokio::test]
    async fn a_request_whose_answer_never_ends_fails_past_the_limit() {
        let (mut client, mut server, socket) = session_pair().await;
        let mut guard = MemoryGuard::describing();
        guard.described(Some(socket));
        assert!(guard.is_active());
        let flood = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            while server.write_all(&chunk).await.is_ok() {}
        });
        let answer = async {
            let mut held = Vec::new();
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = client.read(&mut buf).await.unwrap();
                held.extend_from_slice(&buf[..n]);
            }
        };
        let e = guard.request("SETUP", answer).await.unwrap_err();
        assert_eq!(e.phase, Phase::Answer("SETUP"));
        // Checked after every two reads: past the limit by at most what two reads took.
        assert!(e.held > MAX_RTSP_MESSAGE, "{e:?}");
        assert!(e.held <= MAX_RTSP_MESSAGE + 2 * 64 * 1024, "{e:?}");
        // The connection is shut down: a TEARDOWN written on it fails at once.
        let teardown = client.write_all(b"TEARDOWN").await.unwrap_err();
        assert_eq!(
            teardown.kind(),
            std::io::ErrorKind::BrokenPipe,
            "{teardown}"
        );
        flood.abort();
    }

    #[test]
    fn without_a_socket_nothing_is_checked() {
        let mut guard = MemoryGuard::describing();
        guard.described(None);
        assert!(!guard.is_active());
        assert_eq!(guard.check(), Ok(()));
    }
}
