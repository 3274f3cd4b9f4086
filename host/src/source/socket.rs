//! The session's TCP socket, which retina owns and does not hand out: finding it while DESCRIBE
//! is polled, and the few things the source asks the kernel about it (the read low-water mark
//! for [`super::batching`], the bytes read from it for [`super::guard`]).
//!
//! The socket is the one TCP descriptor connected to the camera's port that appeared while
//! DESCRIBE was polled ([`find_socket`]): on the recorder's one runtime thread nothing else
//! connects during that poll. It is identified at the first poll after the connection is
//! established, before the camera's answer is read, so the guard can watch DESCRIBE itself.
//!
//! Must not: hand out a descriptor it did not see created while polling DESCRIBE, or one of
//! several that appeared at once (another thread connecting at the same time); close or read
//! the descriptor (retina owns it; [`SessionSocket::shut_down`] ends the connection, never the
//! descriptor).

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A connected TCP socket of this process, found by [`find_socket`]. Only valid while the
/// connection it was found for is open: the holder must drop it before the session. It does
/// not own the descriptor, so copies (one for batching, one for the guard) are free.
#[derive(Clone, Debug)]
pub struct SessionSocket(RawFd);

impl SessionSocket {
    /// `SO_RCVLOWAT`: the socket turns readable once this many bytes are queued.
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

    /// Bytes the process has read from the socket since it connected: received by the kernel
    /// (`TCP_INFO`'s `tcpi_bytes_received`, Linux ≥ 4.1) less what is still queued in it
    /// (`SIOCINQ`). Read in that order, data arriving between the two calls makes the result
    /// smaller, never larger.
    pub fn bytes_read(&self) -> io::Result<u64> {
        let received = self.bytes_received()?;
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD (SIOCINQ on a TCP socket) writes one c_int into the live local.
        let rc = unsafe { libc::ioctl(self.0, libc::FIONREAD, &raw mut queued) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(read_from(received, queued))
    }

    fn bytes_received(&self) -> io::Result<u64> {
        // SAFETY: tcp_info is plain integers, for which all zeroes is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = socklen_of::<libc::tcp_info>();
        // SAFETY: getsockopt writes at most `len` bytes into the live local it is given.
        let rc = unsafe {
            libc::getsockopt(
                self.0,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                std::ptr::from_mut(&mut info).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Kernels before 4.1 return a shorter struct without the field.
        let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
        if (len as usize) < needed {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TCP_INFO has no tcpi_bytes_received (Linux before 4.1)",
            ));
        }
        Ok(info.tcpi_bytes_received)
    }

    /// Ends the connection in both directions (`shutdown(2)`; the descriptor stays retina's to
    /// close): retina's next read sees the end at once.
    pub fn shut_down(&self) -> io::Result<()> {
        // SAFETY: shutdown takes a descriptor and a flag; the descriptor is open (type contract).
        if unsafe { libc::shutdown(self.0, libc::SHUT_RDWR) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
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

/// Bytes read by the process, from the kernel's received total and its queue.
fn read_from(received: u64, queued: libc::c_int) -> u64 {
    received.saturating_sub(u64::try_from(queued).unwrap_or(0))
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
/// several because another thread connected at the same time) gives `None`, never a
/// stranger's socket.
///
/// From the first poll after the socket is identified, `check` is called with it after every
/// poll that leaves `describe` pending; an `Err` from it drops `describe` (and with it the
/// connection and whatever retina read) and is returned.
pub async fn find_socket<F, E>(
    describe: F,
    port: u16,
    check: impl FnMut(&SessionSocket) -> Result<(), E> + Unpin,
) -> Result<(F::Output, Option<SessionSocket>), E>
where
    F: Future,
{
    Watched {
        inner: Box::pin(describe),
        port,
        appeared: BTreeSet::new(),
        found: Found::Undecided,
        check,
    }
    .await
}

/// What the descriptors that appeared say so far.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Nothing connected yet (the connection is still being made).
    Undecided,
    Socket(RawFd),
    /// Several candidates: none is trusted.
    Ambiguous,
}

struct Watched<F, C> {
    inner: Pin<Box<F>>,
    port: u16,
    appeared: BTreeSet<(RawFd, String)>,
    found: Found,
    check: C,
}

impl<F, C> Watched<F, C> {
    /// Settles [`Found`] once the new TCP sockets are connected: exactly one to the port and
    /// none still connecting is the session's.
    fn identify(&mut self) {
        if self.found != Found::Undecided || self.appeared.is_empty() {
            return;
        }
        let (mut to_port, mut connecting) = (0, 0);
        let mut last = None;
        for &(fd, _) in &self.appeared {
            match tcp_peer_port(fd) {
                Peer::Port(p) if p == self.port => {
                    to_port += 1;
                    last = Some(fd);
                }
                Peer::Connecting => connecting += 1,
                Peer::Port(_) | Peer::NotTcp => {}
            }
        }
        self.found = match (to_port, connecting, last) {
            (1, 0, Some(fd)) => Found::Socket(fd),
            (0, _, _) | (1, _, _) => Found::Undecided,
            _ => Found::Ambiguous,
        };
    }
}

impl<F, E, C> Future for Watched<F, C>
where
    F: Future,
    C: FnMut(&SessionSocket) -> Result<(), E> + Unpin,
{
    type Output = Result<(F::Output, Option<SessionSocket>), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Only boxed fields are pinned, so the struct itself may move.
        let this = Pin::into_inner(self);
        // Listing descriptors costs a syscall per open descriptor, so watching stops at the
        // poll that created the connection; the later polls only talk on it.
        let poll = if this.appeared.is_empty() {
            let before = open_sockets();
            let poll = this.inner.as_mut().poll(cx);
            let after = open_sockets();
            this.appeared.extend(after.difference(&before).cloned());
            poll
        } else {
            this.inner.as_mut().poll(cx)
        };
        this.identify();
        match poll {
            Poll::Ready(output) => {
                // Decided on the final set: exactly one connected to the port.
                let mut connected = this
                    .appeared
                    .iter()
                    .map(|&(fd, _)| fd)
                    .filter(|&fd| tcp_peer_port(fd) == Peer::Port(this.port));
                let socket = match (connected.next(), connected.next()) {
                    (Some(fd), None) => Some(SessionSocket(fd)),
                    _ => None,
                };
                Poll::Ready(Ok((output, socket)))
            }
            Poll::Pending => match this.found {
                Found::Socket(fd) => match (this.check)(&SessionSocket(fd)) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                },
                Found::Undecided | Found::Ambiguous => Poll::Pending,
            },
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Peer {
    Port(u16),
    /// A TCP socket without a peer yet: a connection in progress (or a listener).
    Connecting,
    NotTcp,
}

fn tcp_peer_port(fd: RawFd) -> Peer {
    if int_option(fd, libc::SO_TYPE).ok() != Some(libc::SOCK_STREAM) {
        return Peer::NotTcp;
    }
    let socket = SessionSocket(fd);
    match socket2::SockRef::from(&socket.borrow()).peer_addr() {
        Ok(peer) => peer
            .as_socket()
            .map_or(Peer::NotTcp, |p| Peer::Port(p.port())),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Peer::Connecting,
        Err(_) => Peer::NotTcp,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn no_check(_: &SessionSocket) -> Result<(), Infallible> {
        Ok(())
    }

    /// `find_socket` without a check, for tests that only need the socket.
    pub async fn found<F: Future>(f: F, port: u16) -> (F::Output, Option<SessionSocket>) {
        match find_socket(f, port, no_check).await {
            Ok(found) => found,
        }
    }

    /// A connected pair; the client side found as a session would find it.
    pub async fn session_pair() -> (TcpStream, TcpStream, SessionSocket) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, socket) = found(TcpStream::connect(addr), addr.port()).await;
        let (server, _) = listener.accept().await.unwrap();
        (client.unwrap(), server, socket.unwrap())
    }

    #[tokio::test]
    async fn the_socket_describe_connects_is_found_and_no_other() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _earlier = TcpStream::connect(addr).await.unwrap();
        let (stream, socket) = found(TcpStream::connect(addr), addr.port()).await;
        let stream = stream.unwrap();
        let socket = socket.expect("the new connection is found");
        assert_eq!(socket.local_addr().unwrap(), stream.local_addr().unwrap());
        socket.set_low_water(4096).unwrap();
        assert_eq!(socket.low_water().unwrap(), 4096);

        // A connection to another port is not the session's.
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_, none) = found(TcpStream::connect(other.local_addr().unwrap()), addr.port()).await;
        assert!(none.is_none());
    }

    #[test]
    fn bytes_read_are_received_less_queued() {
        assert_eq!(read_from(10_000, 4_000), 6_000);
        assert_eq!(read_from(10_000, 0), 10_000);
        // A queue read after more data arrived can exceed the older total: never negative.
        assert_eq!(read_from(1_000, 4_000), 0);
        assert_eq!(read_from(1_000, -1), 1_000);
    }

    #[tokio::test]
    async fn the_kernel_counts_what_the_process_read() {
        let (mut client, mut server, socket) = session_pair().await;
        assert_eq!(socket.bytes_read().unwrap(), 0);
        server.write_all(&[7; 100_000]).await.unwrap();
        let mut buf = vec![0; 30_000];
        client.read_exact(&mut buf).await.unwrap();
        // Whatever has arrived, exactly what was read counts.
        assert_eq!(socket.bytes_read().unwrap(), 30_000);
        let mut rest = vec![0; 70_000];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(socket.bytes_read().unwrap(), 100_000);
    }

    /// A describe that connects, then waits for the peer's answer, read the way retina reads:
    /// the check sees the socket while the answer is still incomplete and can end it.
    #[tokio::test]
    async fn the_check_runs_while_describe_is_pending_and_can_end_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = [0; 8];
            s.read_exact(&mut request).await.unwrap();
            // An answer that never ends.
            let chunk = vec![b'x'; 64 * 1024];
            while s.write_all(&chunk).await.is_ok() {}
        });
        let describe = async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"DESCRIBE").await.unwrap();
            let mut held = Vec::new();
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                held.extend_from_slice(&buf[..n]);
            }
        };
        let mut checked = Vec::new();
        let outcome = find_socket(describe, addr.port(), |s: &SessionSocket| {
            let read = s.bytes_read().unwrap();
            checked.push(read);
            if read > 1_000_000 { Err(read) } else { Ok(()) }
        })
        .await;
        // The describe never ends, so only the check can.
        let Err(read) = outcome;
        assert!(read > 1_000_000, "{read}");
        assert_eq!(
            checked.first(),
            Some(&0),
            "checked before any answer: {checked:?}"
        );
        peer.abort();
    }
}
