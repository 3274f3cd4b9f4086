//! Read batching: fewer, larger reads from a playing session's socket.
//!
//! A camera sends a frame every 40 ms or so. Reading each one as it arrives costs a wake-up, a
//! read, and a second read that finds the socket empty; at 32 cameras that was about a fifth of
//! the recorder's CPU. The kernel can hold the data back instead: with `SO_RCVLOWAT` a TCP
//! socket turns readable only once that many bytes are queued. This module sets that low-water
//! mark to about [`TARGET_DELAY`] of the session's measured bitrate, so each wake-up reads
//! several frames at once.
//!
//! Data held back is data not yet recorded, so the mark goes back to one byte whenever it could
//! leave data waiting: when nothing has arrived for [`QUIET_LIMIT`] (the bitrate fell, or the
//! camera stalled), and when the session ends (so the camera's answer to TEARDOWN is read at
//! once). It is measured again after every [`WINDOW`].
//!
//! retina owns the connection and does not hand out its socket, so the socket is found as the
//! descriptor that appears while DESCRIBE is polled ([`find_socket`]): on the recorder's one
//! runtime thread nothing else runs during that poll.
//!
//! Must not: touch a descriptor it did not see created while polling DESCRIBE; leave the mark
//! above one byte once a session's data has gone quiet or the session has ended.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How long data may wait in the kernel while the session streams steadily. Fragments are 2 s
/// and the wall-clock mapping tolerates seconds of jitter, so a quarter second costs nothing
/// recorded; 32 KiB and 64 KiB marks at 2 Mbit/s (0.13 s and 0.26 s) cost 0.78× and 0.76× the
/// CPU of reading every frame, 16 KiB 0.85×.
pub const TARGET_DELAY: Duration = Duration::from_millis(250);

/// No data for this long while holding data back releases the mark: held data is read at once.
pub const QUIET_LIMIT: Duration = Duration::from_secs(1);

/// The bitrate is measured over this long before the mark is (re)set.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Upper bound of the mark: more than this buys nothing measurable and holds more data.
pub const MAX_LOW_WATER: u32 = 64 * 1024;

/// The mark for a session that received `bytes` in `elapsed`: [`TARGET_DELAY`] worth of data,
/// at least one byte (the kernel's default: readable as soon as anything is queued).
pub fn low_water_for(bytes: u64, elapsed: Duration) -> u32 {
    if elapsed.is_zero() {
        return 1;
    }
    let held = u128::from(bytes) * TARGET_DELAY.as_nanos() / elapsed.as_nanos();
    u32::try_from(held)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_LOW_WATER)
}

/// A connected TCP socket of this process, found by [`find_socket`]. Only valid while the
/// connection it was found for is open: the holder must drop it before the session.
#[derive(Debug)]
pub struct SessionSocket(RawFd);

impl SessionSocket {
    pub fn set_low_water(&self, bytes: u32) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local; on a
        // descriptor that is not a socket it fails with ENOTSOCK and changes nothing.
        let rc = unsafe {
            libc::setsockopt(
                self.0,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast(),
                socklen_of::<libc::c_int>(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn low_water(&self) -> io::Result<u32> {
        let value = int_option(self.0, libc::SO_RCVLOWAT)?;
        Ok(u32::try_from(value).unwrap_or(1))
    }

    /// The local address of the socket: its identity in `ss` and packet captures.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        socket2::SockRef::from(&self.borrow())
            .local_addr()
            .and_then(|a| {
                a.as_socket()
                    .ok_or_else(|| io::Error::other("not an internet socket"))
            })
    }

    fn borrow(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor is open for as long as `self` is (the type's contract).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).expect("option sizes fit socklen_t")
}

fn int_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = socklen_of::<libc::c_int>();
    // SAFETY: getsockopt writes at most `len` bytes into the live local it is given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            std::ptr::from_mut(&mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Every open socket of this process: descriptor and socket inode. The inode tells a new
/// socket from an old one that had the same descriptor number before another thread closed it.
fn open_sockets() -> BTreeSet<(RawFd, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let fd = e.file_name().to_str()?.parse().ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        let target = target.to_str()?;
        target
            .starts_with("socket:")
            .then(|| (fd, target.to_owned()))
    })
    .collect()
}

/// Polls `describe` and returns its output together with the one TCP socket connected to
/// `port` that appeared while it was polled, if exactly one did. Any other outcome (none, or
/// several because another thread connected at the same time) gives `None`: no batching,
/// never a stranger's socket.
pub async fn find_socket<F: Future>(describe: F, port: u16) -> (F::Output, Option<SessionSocket>) {
    let mut watched = Watched {
        inner: Box::pin(describe),
        appeared: BTreeSet::new(),
    };
    let output = (&mut watched).await;
    let mut connected = watched
        .appeared
        .into_iter()
        .map(|(fd, _)| fd)
        .filter(|&fd| is_tcp_stream_to(fd, port));
    let socket = match (connected.next(), connected.next()) {
        (Some(fd), None) => Some(SessionSocket(fd)),
        _ => None,
    };
    (output, socket)
}

struct Watched<F> {
    inner: Pin<Box<F>>,
    appeared: BTreeSet<(RawFd, String)>,
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Listing descriptors costs a syscall per open descriptor, so watching stops at the
        // poll that created the connection; the later polls only talk on it.
        if !self.appeared.is_empty() {
            return self.inner.as_mut().poll(cx);
        }
        let before = open_sockets();
        let poll = self.inner.as_mut().poll(cx);
        let after = open_sockets();
        self.appeared.extend(after.difference(&before).cloned());
        poll
    }
}

fn is_tcp_stream_to(fd: RawFd, port: u16) -> bool {
    if int_option(fd, libc::SO_TYPE).ok() != Some(libc::SOCK_STREAM) {
        return false;
    }
    let socket = SessionSocket(fd);
    let peer = socket2::SockRef::from(&socket.borrow()).peer_addr();
    matches!(peer.map(|p| p.as_socket()), Ok(Some(p)) if p.port() == port)
}

/// The low-water mark of one playing session: measured, set, and released when data could be
/// left waiting. Dropping it releases the mark.
pub struct ReadBatching {
    socket: Option<SessionSocket>,
    mark: u32,
    window_start: Option<Instant>,
    window_bytes: u64,
    last_data: Instant,
    quiet_timer: Pin<Box<Sleep>>,
}

impl ReadBatching {
    /// `socket: None` (not found) measures nothing and never holds data back.
    pub fn new(socket: Option<SessionSocket>) -> Self {
        Self {
            socket,
            mark: 1,
            window_start: None,
            window_bytes: 0,
            last_data: Instant::now(),
            quiet_timer: Box::pin(tokio::time::sleep(QUIET_LIMIT)),
        }
    }

    /// True while the kernel may be holding data back.
    pub fn is_holding(&self) -> bool {
        self.mark > 1
    }

    /// `bytes` of media arrived at `now`; at the end of each [`WINDOW`] the mark follows the
    /// bitrate.
    pub fn received(&mut self, bytes: usize, now: Instant) {
        if self.socket.is_none() {
            return;
        }
        self.last_data = now;
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now - start;
        if elapsed < WINDOW {
            return;
        }
        let mark = low_water_for(self.window_bytes, elapsed);
        self.window_start = Some(now);
        self.window_bytes = 0;
        if mark != self.mark {
            self.set(mark);
        }
    }

    /// Resolves once nothing has arrived for [`QUIET_LIMIT`]; pending while not holding.
    pub async fn quiet(&mut self) {
        loop {
            self.quiet_timer.as_mut().await;
            let now = Instant::now();
            let deadline = self.last_data + QUIET_LIMIT;
            if !self.is_holding() {
                self.quiet_timer.as_mut().reset(now + QUIET_LIMIT);
            } else if now >= deadline {
                return;
            } else {
                self.quiet_timer.as_mut().reset(deadline);
            }
        }
    }

    /// Makes the socket readable at once again and starts measuring afresh.
    pub fn release(&mut self) {
        self.window_start = None;
        self.window_bytes = 0;
        if self.is_holding() {
            self.set(1);
        }
    }

    fn set(&mut self, mark: u32) {
        let Some(socket) = &self.socket else { return };
        match socket.set_low_water(mark) {
            Ok(()) => {
                tracing::debug!(mark, "read low-water mark");
                self.mark = mark;
            }
            Err(e) => {
                // Unbatched reads cost CPU, nothing else; stop trying for this session.
                tracing::debug!(error = %e, "SO_RCVLOWAT refused; reading every frame");
                self.socket = None;
                self.mark = 1;
            }
        }
    }
}

impl Drop for ReadBatching {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn the_mark_is_a_quarter_second_of_data_within_bounds() {
        let five = Duration::from_secs(5);
        // 2 Mbit/s: 250 000 B/s, a quarter second is 62 500 B.
        assert_eq!(low_water_for(1_250_000, five), 62_500);
        // 64 kbit/s: 2 000 B.
        assert_eq!(low_water_for(40_000, five), 2_000);
        // 20 Mbit/s would hold 625 000 B; capped.
        assert_eq!(low_water_for(12_500_000, five), MAX_LOW_WATER);
        assert_eq!(low_water_for(0, five), 1);
        assert_eq!(low_water_for(1_000, Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn the_socket_describe_connects_is_found_and_no_other() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _earlier = TcpStream::connect(addr).await.unwrap();
        let (stream, socket) = find_socket(TcpStream::connect(addr), addr.port()).await;
        let stream = stream.unwrap();
        let socket = socket.expect("the new connection is found");
        assert_eq!(socket.local_addr().unwrap(), stream.local_addr().unwrap());
        socket.set_low_water(4096).unwrap();
        assert_eq!(socket.low_water().unwrap(), 4096);

        // A connection to another port is not the session's.
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_, none) =
            find_socket(TcpStream::connect(other.local_addr().unwrap()), addr.port()).await;
        assert!(none.is_none());
    }

    /// A connected pair; the client side found as a session would find it.
    async fn session_pair() -> (TcpStream, TcpStream, SessionSocket) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, socket) = find_socket(TcpStream::connect(addr), addr.port()).await;
        let (server, _) = listener.accept().await.unwrap();
        (client.unwrap(), server, socket.unwrap())
    }

    #[tokio::test]
    async fn the_mark_follows_the_bitrate_and_is_released_when_quiet_or_dropped() {
        let (client, mut server, socket) = session_pair().await;
        let fd = socket.0;
        let mut batching = ReadBatching::new(Some(socket));
        // A window that ends now, so the quiet limit counts from now.
        let t0 = Instant::now() - WINDOW;
        batching.received(250_000, t0);
        assert!(
            !batching.is_holding(),
            "nothing is held before a window is measured"
        );
        batching.received(1_000_000, t0 + WINDOW);
        assert_eq!(SessionSocket(fd).low_water().unwrap(), 62_500);
        assert!(batching.is_holding());

        // Held back: a frame's worth below the mark does not make the socket readable.
        server.write_all(&[0; 1000]).await.unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(300), client.readable()).await;
        assert!(wait.is_err(), "1000 B under a 62500 B mark must wait");

        // Nothing arrived for the quiet limit (t0 + WINDOW was the last data): released, and
        // the waiting bytes are readable at once.
        tokio::time::timeout(QUIET_LIMIT * 2, batching.quiet())
            .await
            .expect("quiet fires");
        assert!(t0.elapsed() >= WINDOW + QUIET_LIMIT, "quiet fired early");
        batching.release();
        assert_eq!(SessionSocket(fd).low_water().unwrap(), 1);
        tokio::time::timeout(Duration::from_millis(300), client.readable())
            .await
            .expect("readable once released")
            .unwrap();
        let mut buf = [0; 2000];
        assert_eq!(client.try_read(&mut buf).unwrap(), 1000);

        // Measured again, held again, released on drop.
        let t1 = Instant::now() - WINDOW;
        batching.received(0, t1);
        batching.received(40_000, t1 + WINDOW);
        assert_eq!(SessionSocket(fd).low_water().unwrap(), 2_000);
        drop(batching);
        assert_eq!(SessionSocket(fd).low_water().unwrap(), 1);
    }

    #[tokio::test]
    async fn without_a_socket_nothing_is_held() {
        let mut batching = ReadBatching::new(None);
        let t0 = Instant::now();
        batching.received(1_000_000, t0);
        batching.received(1_000_000, t0 + WINDOW);
        assert!(!batching.is_holding());
    }
}
