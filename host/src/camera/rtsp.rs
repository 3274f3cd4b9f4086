//! One RTSP/1.0 connection of the test camera: request parsing, the session (TCP interleaved
//! only, like LVA) and, once playing, writing the stream's frames as RTP.
//!
//! Everything about one connection lives in one task: reading requests, answering them and
//! writing media are interleaved by `select!`, so no session needs a thread or an extra task.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::clip::AccessUnit;
use super::rtp::RtpTrack;
use super::stream::{Stream, Tick, Track};
use super::{Control, Shared, VideoCodec};

/// Requests larger than this are a protocol violation, not something to buffer.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a session lives without a request naming it (the `timeout` of its Session header).
pub(super) const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 97;
/// How often a playing session gets RTCP sender reports (wall clock ↔ RTP time), as cameras do.
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Misbehaviours served on `/fault/<name>`, for the recorder's bad-input tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Normal handshake, then bytes that are neither RTSP nor interleaved RTP.
    Garbage,
    /// Answers every request with an HTTP response, as a web server on the port would.
    Http,
    /// Normal handshake, then no media at all.
    Stall,
    /// Normal handshake, then video without its keyframes: pictures nothing can start from.
    NoKeyframe,
    /// Normal handshake and [`FREEZE_AFTER_FRAMES`] video frames, then only RTCP sender
    /// reports on the open connection, as from a camera whose encoder hangs while its RTSP
    /// stack lives on.
    Freeze,
    /// Normal handshake and [`FREEZE_AFTER_FRAMES`] video frames, then the camera closes the
    /// connection; with `--max-sessions` the session outlives it, as a stale session.
    Cut,
    /// An H.265 camera whose SPS (in the SDP and in band) declares a reorder depth of
    /// [`DEEP_REORDER`] pictures, far past the 16 the codec allows.
    DeepReorder,
    /// Answers DESCRIBE with `Content-Length: ` [`HUGE_CONTENT_LENGTH`] (4 GiB), then sends
    /// filler as fast as the client reads it: an answer that never ends. Authentication is
    /// not asked for.
    HugeDescribe,
    /// H.264 only: normal handshake, then after PLAY one access unit that never ends: FU-A
    /// fragments of one IDR slice, all with the same RTP timestamp, none with the end bit or
    /// the marker, as fast as the client reads them.
    EndlessAu,
}

/// The `Content-Length` of `/fault/hugedescribe`'s answer: 4 GiB.
pub const HUGE_CONTENT_LENGTH: u64 = 1 << 32;

/// Bytes `/fault/hugedescribe` and `/fault/endlessau` queue per write.
const FLOOD_CHUNK: usize = 64 * 1024;

/// What a flooding fault path sends, as fast as the client reads.
#[derive(Debug)]
enum Flood {
    /// The body of `/fault/hugedescribe`'s answer.
    Filler,
    /// FU-A fragments of `/fault/endlessau`'s access unit; `started` once its first fragment
    /// (with the start bit) is sent.
    AccessUnit { rtp_ts: u32, started: bool },
}

/// The reorder depth `/fault/deepreorder` declares.
pub const DEEP_REORDER: u32 = 1_000_000;

/// Video frames `/fault/freeze` and `/fault/cut` send before their media stops: 8 s at 25 fps.
pub const FREEZE_AFTER_FRAMES: u32 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Camera(usize),
    Fault(Fault),
}

struct Request {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session id the request names, without the header's parameters.
    fn session_id(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or_default().trim())
    }
}

enum Incoming {
    Request(Request),
    /// Interleaved data from the client (RTCP receiver reports); ignored.
    Interleaved,
}

/// Takes one complete message off the front of `buf`, if there is one.
fn parse(buf: &mut BytesMut) -> Result<Option<Incoming>, String> {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf.len() < len {
            return Ok(None);
        }
        buf.advance(len);
        return Ok(Some(Incoming::Interleaved));
    }
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_REQUEST {
            return Err("request header larger than 64 KiB".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "request is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(uri), Some("RTSP/1.0")) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("not an RTSP/1.0 request line: {request_line:?}"));
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let request = Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers,
    };
    let body_len: usize = match request.header("Content-Length") {
        Some(v) => v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?,
        None => 0,
    };
    let total = head_end + 4 + body_len;
    if total > MAX_REQUEST {
        return Err("request larger than 64 KiB".into());
    }
    if buf.len() < total {
        return Ok(None);
    }
    buf.advance(total);
    Ok(Some(Incoming::Request(request)))
}

struct Response {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Response {
    fn new(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            reason,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    fn ok() -> Self {
        Self::new(200, "OK")
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn render(&self, cseq: Option<&str>, out: &mut BytesMut) {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status, self.reason);
        if let Some(c) = cseq {
            let _ = write!(s, "CSeq: {c}\r\n");
        }
        s.push_str("Server: mediagraph-test-camera\r\n");
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
        }
        s.push_str("\r\n");
        s.push_str(&self.body);
        out.extend_from_slice(s.as_bytes());
    }
}

/// The part of a request URL after the camera path: `None` for the aggregate, or a track.
enum UrlPart {
    Aggregate,
    Track(Track),
}

fn resolve(shared: &Shared, uri: &str) -> Option<(Target, UrlPart)> {
    let url = url::Url::parse(uri).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let (target, rest) = match segments.as_slice() {
        ["fault", name, rest @ ..] => {
            let fault = match *name {
                "garbage" => Fault::Garbage,
                "http" => Fault::Http,
                "stall" => Fault::Stall,
                "nokeyframe" => Fault::NoKeyframe,
                "freeze" => Fault::Freeze,
                "cut" => Fault::Cut,
                "deepreorder" if shared.deep_sps.is_some() => Fault::DeepReorder,
                "hugedescribe" => Fault::HugeDescribe,
                "endlessau" if shared.clip.video.codec == VideoCodec::H264 => Fault::EndlessAu,
                _ => return None,
            };
            (Target::Fault(fault), rest)
        }
        ["cam", n, rest @ ..] => (Target::Camera(camera_index(shared, n)?), rest),
        [name, rest @ ..] => (
            Target::Camera(camera_index(shared, name.strip_prefix("cam")?)?),
            rest,
        ),
        [] => return None,
    };
    let control = match rest {
        [] => UrlPart::Aggregate,
        ["trackID=0"] => UrlPart::Track(Track::Video),
        ["trackID=1"] if shared.clip.audio.is_some() => UrlPart::Track(Track::Audio),
        _ => return None,
    };
    Some((target, control))
}

fn camera_index(shared: &Shared, n: &str) -> Option<usize> {
    let n: usize = n.parse().ok()?;
    (1..=shared.streams.len()).contains(&n).then(|| n - 1)
}

fn sdp(shared: &Shared, session_id: u64, target: Target) -> String {
    let clip = &shared.clip;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut s = format!(
        "v=0\r\no=- {session_id} 1 IN IP4 127.0.0.1\r\ns=mediagraph test camera\r\n\
         c=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=range:npt=0-\r\n"
    );
    let v = &clip.video;
    let sps = match (target, &shared.deep_sps) {
        (Target::Fault(Fault::DeepReorder), Some(deep)) => deep,
        _ => &v.sps,
    };
    match v.codec {
        VideoCodec::H264 => {
            let _ = write!(
                s,
                "m=video 0 RTP/AVP {VIDEO_PT}\r\na=rtpmap:{VIDEO_PT} H264/90000\r\n\
                 a=fmtp:{VIDEO_PT} packetization-mode=1;profile-level-id={};sprop-parameter-sets={},{}\r\n",
                v.profile_level_id(),
                b64(sps),
                b64(&v.pps)
            );
        }
        VideoCodec::H265 => {
            let _ = write!(
                s,
                "m=video 0 RTP/AVP {VIDEO_PT}\r\na=rtpmap:{VIDEO_PT} H265/90000\r\n\
                 a=fmtp:{VIDEO_PT} sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
                b64(v.vps.as_deref().unwrap_or_default()),
                b64(sps),
                b64(&v.pps)
            );
        }
    }
    let _ = write!(s, "a=framerate:{}\r\na=control:trackID=0\r\n", shared.fps);
    if let Some(a) = &clip.audio {
        let config: String = a.config.iter().map(|b| format!("{b:02X}")).collect();
        let _ = write!(
            s,
            "m=audio 0 RTP/AVP {AUDIO_PT}\r\na=rtpmap:{AUDIO_PT} MPEG4-GENERIC/{}/{}\r\n\
             a=fmtp:{AUDIO_PT} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
             indexlength=3;indexdeltalength=3;config={config}\r\na=control:trackID=1\r\n",
            a.sample_rate, a.channels
        );
    }
    s
}

struct Session {
    id: String,
    target: Target,
    stream: Arc<Stream>,
    video: Option<RtpTrack>,
    audio: Option<RtpTrack>,
    ticks: Option<broadcast::Receiver<Tick>>,
    /// Media starts at a keyframe, so a late joiner's first frame is decodable.
    synced: bool,
    video_sent: u32,
    last_report: Option<Instant>,
}

impl Session {
    /// Appends RTCP sender reports for every track once [`SENDER_REPORT_INTERVAL`] has passed.
    fn report_if_due(&mut self, out: &mut BytesMut) {
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now - t < SENDER_REPORT_INTERVAL)
        {
            return;
        }
        self.last_report = Some(now);
        let wall = SystemTime::now();
        for (track, rtp) in [(Track::Video, &self.video), (Track::Audio, &self.audio)] {
            if let Some(rtp) = rtp {
                rtp.sender_report(out, self.stream.rtp_now(track), wall);
            }
        }
    }
}

/// What the connection loop does after a request.
enum Next {
    Continue,
    Close,
}

struct Connection {
    shared: Arc<Shared>,
    session: Option<Session>,
    out: BytesMut,
    flood: Option<Flood>,
}

impl Connection {
    fn handle(&mut self, req: &Request) -> Next {
        let cseq = req.header("CSeq").map(str::to_owned);
        let resolved = resolve(&self.shared, &req.uri);
        if let Some((Target::Fault(Fault::Http), _)) = resolved {
            self.out.extend_from_slice(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 22\r\n\
                  Connection: close\r\n\r\n<h1>Not Found</h1>\r\n\r\n",
            );
            return Next::Close;
        }
        if req.method == "DESCRIBE"
            && let Some((Target::Fault(Fault::HugeDescribe), _)) = resolved
        {
            let cseq = cseq.map(|c| format!("CSeq: {c}\r\n")).unwrap_or_default();
            let head = format!(
                "RTSP/1.0 200 OK\r\n{cseq}Server: mediagraph-test-camera\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {HUGE_CONTENT_LENGTH}\r\n\r\n"
            );
            self.out.extend_from_slice(head.as_bytes());
            self.flood = Some(Flood::Filler);
            tracing::info!(uri = %req.uri, "test camera: answering DESCRIBE with a body that never ends");
            return Next::Continue;
        }
        let response = self.respond(req, resolved);
        response.render(cseq.as_deref(), &mut self.out);
        Next::Continue
    }

    fn respond(&mut self, req: &Request, resolved: Option<(Target, UrlPart)>) -> Response {
        if req.method != "OPTIONS"
            && let Some(auth) = &self.shared.auth
            && !auth.check(&req.method, req.header("Authorization"))
        {
            let mut r = Response::new(401, "Unauthorized");
            for c in auth.challenges() {
                r = r.header("WWW-Authenticate", c);
            }
            return r;
        }
        if let (Some(slots), Some(id)) = (&self.shared.slots, req.session_id()) {
            slots.refresh(id, Instant::now());
        }
        match req.method.as_str() {
            "OPTIONS" => Response::ok().header(
                "Public",
                "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER",
            ),
            "DESCRIBE" => match resolved {
                Some((target, UrlPart::Aggregate)) => {
                    let base = if req.uri.ends_with('/') {
                        req.uri.clone()
                    } else {
                        format!("{}/", req.uri)
                    };
                    let mut r = Response::ok()
                        .header("Content-Base", base)
                        .header("Content-Type", "application/sdp");
                    r.body = sdp(&self.shared, rand::random::<u32>().into(), target);
                    r
                }
                _ => Response::new(404, "Not Found"),
            },
            "SETUP" => self.setup(req, resolved),
            "PLAY" => self.play(req),
            "TEARDOWN" => {
                // A stale session's slot is freed from any connection; its own connection's
                // session ends too.
                let id = req.session_id();
                let slot = match (&self.shared.slots, id) {
                    (Some(slots), Some(id)) => slots.release(id),
                    _ => false,
                };
                let own = self.session_matches(req) && self.session.take().is_some();
                if slot || own {
                    let id = id.unwrap_or_default();
                    tracing::info!(session = %id, uri = %req.uri, "test camera: session torn down");
                }
                Response::ok()
            }
            "GET_PARAMETER" | "SET_PARAMETER" => match &self.session {
                Some(s) => Response::ok().header("Session", s.id.clone()),
                None => Response::ok(),
            },
            _ => Response::new(501, "Not Implemented"),
        }
    }

    fn session_matches(&self, req: &Request) -> bool {
        matches!((&self.session, req.session_id()), (Some(s), Some(w)) if s.id == w)
    }

    fn setup(&mut self, req: &Request, resolved: Option<(Target, UrlPart)>) -> Response {
        let Some((target, UrlPart::Track(track))) = resolved else {
            return Response::new(404, "Not Found");
        };
        let transport = req.header("Transport").unwrap_or_default();
        if !transport.starts_with("RTP/AVP/TCP") {
            return Response::new(461, "Unsupported Transport");
        }
        let channel = transport
            .split(';')
            .find_map(|p| p.trim().strip_prefix("interleaved="))
            .and_then(|v| v.split('-').next()?.parse::<u8>().ok());
        if req.header("Session").is_some() && !self.session_matches(req) {
            return Response::new(454, "Session Not Found");
        }
        let stream = match target {
            Target::Camera(i) => self.shared.streams[i].clone(),
            Target::Fault(_) => self.shared.streams[0].clone(),
        };
        if self.session.is_none() {
            let id = format!("{:016X}", rand::random::<u64>());
            if let Some(slots) = &self.shared.slots
                && !slots.claim(&id, Instant::now())
            {
                tracing::info!(uri = %req.uri, "test camera: session refused, every session slot is held");
                return Response::new(453, "Not Enough Bandwidth");
            }
            self.session = Some(Session {
                id,
                target,
                stream,
                video: None,
                audio: None,
                ticks: None,
                synced: false,
                video_sent: 0,
                last_report: None,
            });
        }
        let session = self.session.as_mut().expect("set above");
        if session.target != target {
            return Response::new(459, "Aggregate Operation Not Allowed");
        }
        let channel = channel.unwrap_or(match track {
            Track::Video => 0,
            Track::Audio => 2,
        });
        let rtp = RtpTrack::new(
            channel,
            match track {
                Track::Video => VIDEO_PT,
                Track::Audio => AUDIO_PT,
            },
        );
        let reply = format!(
            "RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={:08X};mode=\"PLAY\"",
            channel,
            channel.wrapping_add(1),
            rtp.ssrc
        );
        match track {
            Track::Video => session.video = Some(rtp),
            Track::Audio => session.audio = Some(rtp),
        }
        Response::ok().header("Transport", reply).header(
            "Session",
            format!("{};timeout={}", session.id, SESSION_TIMEOUT.as_secs()),
        )
    }

    fn play(&mut self, req: &Request) -> Response {
        if !self.session_matches(req) {
            return Response::new(454, "Session Not Found");
        }
        let Some(session) = self.session.as_mut() else {
            return Response::new(454, "Session Not Found");
        };
        let base = req.uri.trim_end_matches('/');
        let mut info = Vec::new();
        for (track, rtp, id) in [
            (Track::Video, &session.video, 0),
            (Track::Audio, &session.audio, 1),
        ] {
            if let Some(rtp) = rtp {
                info.push(format!(
                    "url={base}/trackID={id};seq={};rtptime={}",
                    rtp.seq,
                    session.stream.rtp_now(track)
                ));
            }
        }
        if session.target == Target::Fault(Fault::EndlessAu) && self.flood.is_none() {
            self.flood = Some(Flood::AccessUnit {
                rtp_ts: session.stream.rtp_now(Track::Video),
                started: false,
            });
            tracing::info!(session = %session.id, uri = %req.uri, "test camera: playing an access unit that never ends");
        } else if session.ticks.is_none() && session.target != Target::Fault(Fault::Stall) {
            session.ticks = Some(session.stream.subscribe());
            session.synced = session.video.is_none();
            self.shared.plays.fetch_add(1, Ordering::Relaxed);
            tracing::info!(session = %session.id, uri = %req.uri, "test camera: session playing");
        }
        Response::ok()
            .header("Session", session.id.clone())
            .header("Range", "npt=0.000-")
            .header("RTP-Info", info.join(","))
    }

    /// Packetizes one frame for the session into `self.out`; `Close` once `/fault/cut` has
    /// sent its frames.
    fn media(&mut self, tick: Tick) -> Next {
        let Some(session) = self.session.as_mut() else {
            return Next::Continue;
        };
        if session.target == Target::Fault(Fault::Garbage) {
            // Not `$` (interleaved) and not `RTSP/` (a response): unframeable for any client.
            let junk: [u8; 64] = rand::random();
            self.out.extend_from_slice(b"\x00GARBAGE");
            self.out.extend_from_slice(&junk);
            return Next::Continue;
        }
        let done = session.video_sent >= FREEZE_AFTER_FRAMES;
        match session.target {
            Target::Fault(Fault::Freeze) if done => {
                session.report_if_due(&mut self.out);
                return Next::Continue;
            }
            Target::Fault(Fault::Cut) if done => {
                tracing::info!(session = %session.id, "test camera: closing the connection of a playing session");
                return Next::Close;
            }
            _ => {}
        }
        let clip = &session.stream.clip;
        match tick.track {
            Track::Video => {
                let Some(rtp) = session.video.as_mut() else {
                    return Next::Continue;
                };
                if session.target == Target::Fault(Fault::NoKeyframe) {
                    if tick.keyframe {
                        return Next::Continue;
                    }
                } else if !session.synced && !tick.keyframe {
                    return Next::Continue;
                }
                session.synced = true;
                session.video_sent += 1;
                let au = &clip.video.units[tick.index];
                let deep;
                let au = match (session.target, &self.shared.deep_sps) {
                    // In-band parameter sets repeat the SDP's claim.
                    (Target::Fault(Fault::DeepReorder), Some(sps)) => {
                        deep = AccessUnit {
                            nals: au
                                .nals
                                .iter()
                                .map(|n| match n.first() {
                                    Some(h) if (h >> 1) & 0x3f == 33 => sps.clone(),
                                    _ => n.clone(),
                                })
                                .collect(),
                            keyframe: au.keyframe,
                        };
                        &deep
                    }
                    _ => au,
                };
                match clip.video.codec {
                    VideoCodec::H264 => rtp.h264(&mut self.out, au, tick.rtp_ts),
                    VideoCodec::H265 => rtp.h265(&mut self.out, au, tick.rtp_ts),
                }
            }
            Track::Audio => {
                let (Some(rtp), Some(audio)) = (session.audio.as_mut(), clip.audio.as_ref()) else {
                    return Next::Continue;
                };
                if !session.synced {
                    return Next::Continue;
                }
                rtp.aac(&mut self.out, &audio.frames[tick.index], tick.rtp_ts);
            }
        }
        session.report_if_due(&mut self.out);
        Next::Continue
    }

    /// Appends the next [`FLOOD_CHUNK`] of the flooding fault path.
    fn flood(&mut self) {
        match &mut self.flood {
            None => {}
            Some(Flood::Filler) => self.out.put_bytes(b'x', FLOOD_CHUNK),
            Some(Flood::AccessUnit { rtp_ts, started }) => {
                let Some(rtp) = self.session.as_mut().and_then(|s| s.video.as_mut()) else {
                    // Torn down: nothing more to send (and no busy loop on an empty flood).
                    self.flood = None;
                    return;
                };
                let filler = [0x55; 1398];
                while self.out.len() < FLOOD_CHUNK {
                    // nal_ref_idc 3, type 5: an IDR slice.
                    rtp.h264_unending_fragment(&mut self.out, *rtp_ts, 0x65, !*started, &filler);
                    *started = true;
                }
            }
        }
    }

    fn lagged(&mut self) {
        if let Some(s) = self.session.as_mut() {
            s.synced = s.video.is_none();
        }
    }
}

async fn next_tick(session: &mut Option<Session>) -> Result<Tick, broadcast::error::RecvError> {
    match session.as_mut().and_then(|s| s.ticks.as_mut()) {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Serves one client until it disconnects, misbehaves, or the camera drops its sessions.
pub(super) async fn serve(
    mut sock: TcpStream,
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
) {
    let generation = control.borrow_and_update().generation;
    let peer = sock.peer_addr().ok();
    let mut conn = Connection {
        shared,
        session: None,
        out: BytesMut::with_capacity(16 * 1024),
        flood: None,
    };
    let mut input = BytesMut::with_capacity(4096);
    loop {
        let mut close = false;
        tokio::select! {
            read = sock.read_buf(&mut input) => {
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                loop {
                    match parse(&mut input) {
                        Ok(None) => break,
                        Ok(Some(Incoming::Interleaved)) => {}
                        Ok(Some(Incoming::Request(req))) => {
                            tracing::debug!(?peer, method = %req.method, uri = %req.uri, "test camera request");
                            if let Next::Close = conn.handle(&req) {
                                close = true;
                                break;
                            }
                        }
                        Err(reason) => {
                            tracing::info!(?peer, %reason, "test camera: closing connection on bad request");
                            let r = Response::new(400, "Bad Request");
                            r.render(None, &mut conn.out);
                            close = true;
                            break;
                        }
                    }
                }
            }
            tick = next_tick(&mut conn.session) => match tick {
                Ok(t) => close = matches!(conn.media(t), Next::Close),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(?peer, skipped = n, "test camera: slow client, resyncing at next keyframe");
                    conn.lagged();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = control.changed() => {
                if changed.is_err() || control.borrow().generation != generation {
                    return;
                }
            }
            () = std::future::ready(()), if conn.flood.is_some() => conn.flood(),
        }
        if !conn.out.is_empty() {
            // A client that stops reading blocks this write; drop_sessions must still end it.
            tokio::select! {
                written = sock.write_all(&conn.out) => if written.is_err() {
                    return;
                },
                _ = control.wait_for(|c| c.generation != generation) => return,
            }
            conn.out.clear();
        }
        if close {
            return;
        }
    }
}
