//! Rewrites an H.265 SPS to declare another reorder depth, for the `/fault/deepreorder` path: a
//! camera whose parameter sets claim a reordering no codec allows.

/// `sps_nal` (NAL unit with its 2-byte header, emulation prevention included) with every
/// `sps_max_num_reorder_pics` set to `depth`; `None` if it is not an SPS this can walk.
pub fn h265_with_reorder_depth(sps_nal: &[u8], depth: u32) -> Option<Vec<u8>> {
    let (header, payload) = (sps_nal.get(..2)?, sps_nal.get(2..)?);
    let rbsp = unescape(payload);
    let mut r = Bits {
        data: &rbsp,
        pos: 0,
    };
    r.skip(4)?; // sps_video_parameter_set_id
    let sub_layers = r.read(3)? as usize; // sps_max_sub_layers_minus1
    r.skip(1)?; // sps_temporal_id_nesting_flag
    r.skip(8 + 32 + 48 + 8)?; // general profile, tier and level
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(sub_layers) {
        *p = (r.read(1)? == 1, r.read(1)? == 1);
    }
    if sub_layers > 0 {
        r.skip(2 * (8 - sub_layers))?;
    }
    for &(profile, level) in present.iter().take(sub_layers) {
        r.skip(if profile { 88 } else { 0 })?;
        r.skip(if level { 8 } else { 0 })?;
    }
    r.ue()?; // sps_seq_parameter_set_id
    if r.ue()? == 3 {
        r.skip(1)?; // separate_colour_plane_flag
    }
    r.ue()?; // pic_width_in_luma_samples
    r.ue()?; // pic_height_in_luma_samples
    if r.read(1)? == 1 {
        for _ in 0..4 {
            r.ue()?; // conf_win_*_offset
        }
    }
    r.ue()?; // bit_depth_luma_minus8
    r.ue()?; // bit_depth_chroma_minus8
    r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
    let first = if r.read(1)? == 1 { 0 } else { sub_layers };
    let mut fields = Vec::new();
    for _ in first..=sub_layers {
        r.ue()?; // sps_max_dec_pic_buffering_minus1
        let start = r.pos;
        r.ue()?; // sps_max_num_reorder_pics
        fields.push((start, r.pos));
        r.ue()?; // sps_max_latency_increase_plus1
    }
    // Copy the bits, the reorder fields replaced, up to and including the stop bit; then pad.
    let total = rbsp.len() * 8;
    let stop = (0..total).rev().find(|&i| bit(&rbsp, i))?;
    let mut out = Vec::new();
    let mut at = 0;
    for (start, end) in fields {
        (at..start).for_each(|i| out.push(bit(&rbsp, i)));
        push_ue(&mut out, depth);
        at = end;
    }
    (at..=stop).for_each(|i| out.push(bit(&rbsp, i)));
    while out.len() % 8 != 0 {
        out.push(false);
    }
    let bytes: Vec<u8> = out
        .chunks(8)
        .map(|b| b.iter().fold(0u8, |acc, &x| (acc << 1) | u8::from(x)))
        .collect();
    let mut nal = header.to_vec();
    nal.extend(escape(&bytes));
    Some(nal)
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            (self.pos < self.data.len() * 8).then_some(())?;
            v = (v << 1) | u32::from(bit(self.data, self.pos));
            self.pos += 1;
        }
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        (self.pos + n <= self.data.len() * 8).then(|| self.pos += n)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.read(1)? == 0 {
            zeros += 1;
            (zeros < 32).then_some(())?;
        }
        Some((1u32 << zeros) - 1 + self.read(zeros)?)
    }
}

fn bit(data: &[u8], i: usize) -> bool {
    (data[i / 8] >> (7 - i % 8)) & 1 == 1
}

fn push_ue(out: &mut Vec<bool>, v: u32) {
    let x = u64::from(v) + 1;
    let len = 64 - x.leading_zeros() as usize;
    out.extend(std::iter::repeat_n(false, len - 1));
    out.extend((0..len).rev().map(|i| (x >> i) & 1 == 1));
}

/// Drops emulation prevention bytes (`00 00 03` → `00 00`).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Inserts emulation prevention bytes where two zeros precede a byte ≤ 3.
fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 4);
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_clips_sps_is_rewritten_and_reads_back() {
        let clip = super::super::Clip::load(super::super::VideoCodec::H265, false, None).unwrap();
        let sps = &clip.video.sps;
        let deep = h265_with_reorder_depth(sps, 1_000_000).unwrap();
        assert_eq!(
            crate::source::reorder::h265_declared_depth(&deep),
            Some(1_000_000)
        );
        let same = h265_with_reorder_depth(sps, 0).unwrap();
        assert_eq!(crate::source::reorder::h265_declared_depth(&same), Some(0));
    }
}
