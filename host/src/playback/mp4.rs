//! Just enough ISO-BMFF to split a self-contained CMAF blob (`ftyp` + `moov`, then `moof` +
//! `mdat` fragments) into its init part and its media part for HLS. Reads box headers only,
//! one at a time, so the caller can fetch them from a store with small ranged reads.

/// The longest box header: 32-bit size, type, 64-bit large size.
pub const HEADER_LEN: u64 = 16;

/// Where the walk over top-level boxes stands after one header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The first `moof` starts here: everything before it is the init section.
    Init(u64),
    /// The next box header starts at this offset.
    Next(u64),
    /// Not a fragmented MP4 with a `moov` before its first fragment, or malformed.
    NotFragmented,
}

/// Reads the box header `header` found at offset `at` of a `total`-byte file (`header` holds
/// up to [`HEADER_LEN`] bytes from `at`, fewer only at the end of the file). `saw_moov`
/// carries what earlier boxes showed.
pub fn step(header: &[u8], at: u64, total: u64, saw_moov: &mut bool) -> Step {
    let (Some(size32), Some(kind)) = (header.get(0..4), header.get(4..8)) else {
        return Step::NotFragmented;
    };
    let size = match u32::from_be_bytes([size32[0], size32[1], size32[2], size32[3]]) {
        0 => total.saturating_sub(at),
        1 => match header.get(8..16) {
            Some(large) => u64::from_be_bytes(large.try_into().unwrap_or([0; 8])),
            None => return Step::NotFragmented,
        },
        n => u64::from(n),
    };
    if size < 8 {
        return Step::NotFragmented;
    }
    match kind {
        b"moof" if *saw_moov => return Step::Init(at),
        b"moof" => return Step::NotFragmented,
        b"moov" => *saw_moov = true,
        _ => {}
    }
    match at.checked_add(size) {
        Some(next) if next.checked_add(8).is_some_and(|end| end <= total) => Step::Next(next),
        _ => Step::NotFragmented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(body + 8, 0);
        b
    }

    /// The walk the server does over ranged reads, here over bytes in memory.
    fn init_len(bytes: &[u8]) -> Option<u64> {
        let total = bytes.len() as u64;
        let (mut at, mut saw_moov) = (0u64, false);
        loop {
            if at + 8 > total {
                return None;
            }
            let end = (at + HEADER_LEN).min(total) as usize;
            match step(&bytes[at as usize..end], at, total, &mut saw_moov) {
                Step::Init(n) => return Some(n),
                Step::Next(n) => at = n,
                Step::NotFragmented => return None,
            }
        }
    }

    #[test]
    fn the_init_part_ends_at_the_first_fragment() {
        let mut blob = boxed(b"ftyp", 16);
        blob.extend(boxed(b"moov", 100));
        let init = blob.len() as u64;
        blob.extend(boxed(b"moof", 40));
        blob.extend(boxed(b"mdat", 1000));
        blob.extend(boxed(b"moof", 40));
        assert_eq!(init_len(&blob), Some(init));
    }

    #[test]
    fn large_sizes_are_followed() {
        let mut blob = boxed(b"ftyp", 16);
        let mut moov = 1u32.to_be_bytes().to_vec();
        moov.extend_from_slice(b"moov");
        moov.extend_from_slice(&116u64.to_be_bytes());
        moov.resize(116, 0);
        blob.extend(moov);
        let init = blob.len() as u64;
        blob.extend(boxed(b"moof", 40));
        assert_eq!(init_len(&blob), Some(init));
    }

    #[test]
    fn non_fragmented_or_truncated_or_malformed_files_have_no_init_part() {
        let mut progressive = boxed(b"ftyp", 16);
        progressive.extend(boxed(b"moov", 100));
        progressive.extend(boxed(b"mdat", 100));
        assert_eq!(init_len(&progressive), None);
        let mut no_moov = boxed(b"ftyp", 16);
        no_moov.extend(boxed(b"moof", 10));
        assert_eq!(init_len(&no_moov), None);
        assert_eq!(init_len(b"\0\0\0\x04ftyp"), None);
        assert_eq!(init_len(b"garbage"), None);
        let mut huge = boxed(b"ftyp", 16);
        huge.extend([0xff, 0xff, 0xff, 0xff]);
        huge.extend(b"moov");
        assert_eq!(init_len(&huge), None);
    }
}
