//! RTP packetization of one track into RTSP interleaved frames (`$`, channel, length, packet):
//! H.264 single NAL unit + FU-A (RFC 6184), H.265 single + FU (RFC 7798), AAC-hbr with one
//! AU per packet (RFC 3640). The marker bit is set on the last packet of each access unit.
//! RTCP sender reports (RFC 3550) go on the odd channel next to the track's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

use super::clip::AccessUnit;

/// Largest RTP payload we emit; like a camera on Ethernet, packets stay under a 1500-byte MTU.
const MAX_PAYLOAD: usize = 1400;
const RTP_HEADER_LEN: usize = 12;
/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
const CNAME: &[u8] = b"mediagraph-test-camera";

/// Per-session, per-track RTP state. Sequence numbers continue for the life of the session.
#[derive(Debug)]
pub struct RtpTrack {
    pub channel: u8,
    pub payload_type: u8,
    pub ssrc: u32,
    pub seq: u16,
    packets: u32,
    octets: u32,
}

impl RtpTrack {
    pub fn new(channel: u8, payload_type: u8) -> Self {
        Self {
            channel,
            payload_type,
            ssrc: rand::random(),
            // Clients treat 0 and 1 as "unset" sequence numbers; avoid them.
            seq: rand::random_range(2..=u16::MAX),
            packets: 0,
            octets: 0,
        }
    }

    /// Appends an RTCP compound packet (SR + SDES CNAME) mapping `rtp_ts` to wall clock `now`.
    pub fn sender_report(&self, out: &mut BytesMut, rtp_ts: u32, now: SystemTime) {
        let since_1970 = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let ntp_secs = since_1970.as_secs() + NTP_UNIX_OFFSET;
        let ntp_frac = (u64::from(since_1970.subsec_nanos()) << 32) / 1_000_000_000;
        // SDES chunk: SSRC, CNAME item, end item, padded to a 32-bit boundary.
        let sdes_len = (4 + 2 + CNAME.len() + 1).div_ceil(4) * 4;
        let total = 28 + 4 + sdes_len;
        out.reserve(4 + total);
        out.put_u8(b'$');
        out.put_u8(self.channel.wrapping_add(1));
        out.put_u16(total as u16);
        out.put_slice(&[0x80, 200, 0, 6]);
        out.put_u32(self.ssrc);
        out.put_u32(ntp_secs as u32);
        out.put_u32(ntp_frac as u32);
        out.put_u32(rtp_ts);
        out.put_u32(self.packets);
        out.put_u32(self.octets);
        out.put_slice(&[0x81, 202]);
        out.put_u16(((4 + sdes_len) / 4 - 1) as u16);
        out.put_u32(self.ssrc);
        out.put_slice(&[1, CNAME.len() as u8]);
        out.put_slice(CNAME);
        out.put_bytes(0, sdes_len - 4 - 2 - CNAME.len());
    }

    fn packet(&mut self, out: &mut BytesMut, marker: bool, ts: u32, payload: &[&[u8]]) {
        let len: usize = payload.iter().map(|p| p.len()).sum::<usize>() + RTP_HEADER_LEN;
        out.reserve(4 + len);
        out.put_u8(b'$');
        out.put_u8(self.channel);
        // MAX_PAYLOAD keeps every packet far below the 16-bit interleaved length limit.
        out.put_u16(len as u16);
        out.put_u8(0x80);
        out.put_u8((u8::from(marker) << 7) | self.payload_type);
        out.put_u16(self.seq);
        out.put_u32(ts);
        out.put_u32(self.ssrc);
        for p in payload {
            out.put_slice(p);
        }
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add((len - RTP_HEADER_LEN) as u32);
    }

    /// Appends the packets of one H.264 access unit.
    pub fn h264(&mut self, out: &mut BytesMut, au: &AccessUnit, ts: u32) {
        let last_nal = au.nals.len().saturating_sub(1);
        for (i, nal) in au.nals.iter().enumerate() {
            let last = i == last_nal;
            if nal.len() <= MAX_PAYLOAD {
                self.packet(out, last, ts, &[nal]);
                continue;
            }
            let indicator = (nal[0] & 0xe0) | 28;
            let ty = nal[0] & 0x1f;
            let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_PAYLOAD - 2).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                let start = if k == 0 { 0x80 } else { 0 };
                let end = if k == chunks.len() - 1 { 0x40 } else { 0 };
                let marker = last && end != 0;
                self.packet(out, marker, ts, &[&[indicator, start | end | ty], chunk]);
            }
        }
    }

    /// Appends one H.264 FU-A fragment of the NAL unit with header `nal_header` that is not
    /// its last (no end bit, no marker): `/fault/endlessau`'s access unit that never ends.
    pub fn h264_unending_fragment(
        &mut self,
        out: &mut BytesMut,
        ts: u32,
        nal_header: u8,
        first: bool,
        chunk: &[u8],
    ) {
        let indicator = (nal_header & 0xe0) | 28;
        let start = if first { 0x80 } else { 0 };
        self.packet(
            out,
            false,
            ts,
            &[&[indicator, start | (nal_header & 0x1f)], chunk],
        );
    }

    /// Appends the packets of one H.265 access unit.
    pub fn h265(&mut self, out: &mut BytesMut, au: &AccessUnit, ts: u32) {
        let last_nal = au.nals.len().saturating_sub(1);
        for (i, nal) in au.nals.iter().enumerate() {
            let last = i == last_nal;
            if nal.len() <= MAX_PAYLOAD {
                self.packet(out, last, ts, &[nal]);
                continue;
            }
            // PayloadHdr keeps F, LayerId and TID of the NAL and sets Type = 49 (FU).
            let hdr = [(nal[0] & 0x81) | (49 << 1), nal[1]];
            let ty = (nal[0] >> 1) & 0x3f;
            let chunks: Vec<&[u8]> = nal[2..].chunks(MAX_PAYLOAD - 3).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                let start = if k == 0 { 0x80 } else { 0 };
                let end = if k == chunks.len() - 1 { 0x40 } else { 0 };
                let marker = last && end != 0;
                self.packet(out, marker, ts, &[&hdr, &[start | end | ty], chunk]);
            }
        }
    }

    /// Appends one AAC frame as an RFC 3640 AAC-hbr packet (sizelength=13, indexlength=3).
    pub fn aac(&mut self, out: &mut BytesMut, frame: &[u8], ts: u32) {
        // AU-headers-length is in bits: one 16-bit header (13-bit size, 3-bit index 0).
        let size = (frame.len() as u16) << 3;
        let headers = [0x00, 0x10, (size >> 8) as u8, size as u8];
        self.packet(out, true, ts, &[&headers, frame]);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn track() -> RtpTrack {
        RtpTrack {
            seq: 65535,
            ..RtpTrack::new(2, 96)
        }
    }

    /// Splits interleaved frames into (marker, seq, payload).
    fn packets(buf: &[u8]) -> Vec<(bool, u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            assert_eq!(rest[0], b'$');
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            let pkt = &rest[4..4 + len];
            assert_eq!(pkt[0], 0x80);
            out.push((
                pkt[1] & 0x80 != 0,
                u16::from_be_bytes([pkt[2], pkt[3]]),
                pkt[12..].to_vec(),
            ));
            rest = &rest[4 + len..];
        }
        out
    }

    #[test]
    fn h264_fragments_large_nals_and_marks_the_last_packet() {
        let big: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000).map(|i| i as u8))
            .collect();
        let au = AccessUnit {
            nals: vec![
                Bytes::from_static(&[0x67, 1, 2, 3]),
                Bytes::from(big.clone()),
            ],
            keyframe: true,
        };
        let mut t = track();
        let mut buf = BytesMut::new();
        t.h264(&mut buf, &au, 9000);
        let p = packets(&buf);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], (false, 65535, vec![0x67, 1, 2, 3]));
        assert_eq!(p[1].1, 0, "sequence numbers wrap");
        assert_eq!(&p[1].2[..2], &[0x7c, 0x85]);
        assert_eq!(&p[3].2[..2], &[0x7c, 0x45]);
        assert_eq!(
            p.iter().map(|p| p.0).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        let rebuilt: Vec<u8> = std::iter::once(0x65)
            .chain(p[1..].iter().flat_map(|p| p.2[2..].to_vec()))
            .collect();
        assert_eq!(rebuilt, big);
    }

    #[test]
    fn h265_fragments_keep_the_nal_type() {
        let big: Vec<u8> = [0x26, 0x01]
            .into_iter()
            .chain(std::iter::repeat_n(7, 2000))
            .collect();
        let au = AccessUnit {
            nals: vec![Bytes::from(big)],
            keyframe: true,
        };
        let mut buf = BytesMut::new();
        track().h265(&mut buf, &au, 0);
        let p = packets(&buf);
        assert_eq!(p.len(), 2);
        assert_eq!(&p[0].2[..3], &[49 << 1, 0x01, 0x80 | 19]);
        assert_eq!(&p[1].2[..3], &[49 << 1, 0x01, 0x40 | 19]);
        assert!(p[1].0 && !p[0].0);
    }

    #[test]
    fn sender_report_counts_what_was_sent() {
        let mut t = track();
        let mut buf = BytesMut::new();
        t.aac(&mut buf, &[9; 300], 0);
        buf.clear();
        t.sender_report(&mut buf, 77, UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(buf[0..2], [b'$', 3]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        assert_eq!(buf.len(), 4 + len);
        assert_eq!(len % 4, 0);
        let sr = &buf[4..];
        assert_eq!(sr[1], 200);
        let word = |i: usize| u32::from_be_bytes(sr[i..i + 4].try_into().unwrap());
        assert_eq!(word(8), 2_208_988_801);
        assert_eq!(word(12), 1 << 31, "half a second");
        assert_eq!((word(16), word(20), word(24)), (77, 1, 304));
        assert_eq!(sr[29], 202);
    }

    #[test]
    fn aac_has_one_au_header() {
        let mut buf = BytesMut::new();
        track().aac(&mut buf, &[9; 300], 1024);
        let p = packets(&buf);
        assert_eq!(&p[0].2[..4], &[0x00, 0x10, 0x09, 0x60]);
        assert_eq!(p[0].2.len(), 304);
        assert!(p[0].0);
    }
}
