//! Just enough ISO-BMFF to split a self-contained CMAF blob (`ftyp` + `moov`, then `moof` +
//! `mdat` fragments) into its init part and its media part for HLS. Reads box headers only.

/// The byte offset of the first `moof`: everything before it (`ftyp`, `moov`, ...) is the
/// init section. `None` if the bytes are not a fragmented MP4 with a `moov` before the first
/// fragment.
pub fn init_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    let mut saw_moov = false;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?);
        let kind = &bytes[at + 4..at + 8];
        let size = match size32 {
            0 => bytes.len() - at,
            1 => {
                let large = bytes.get(at + 8..at + 16)?;
                usize::try_from(u64::from_be_bytes(large.try_into().ok()?)).ok()?
            }
            n => n as usize,
        };
        if size < 8 {
            return None;
        }
        match kind {
            b"moof" => return saw_moov.then_some(at),
            b"moov" => saw_moov = true,
            _ => {}
        }
        at = at.checked_add(size)?;
    }
    None
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

    #[test]
    fn the_init_part_ends_at_the_first_fragment() {
        let mut blob = boxed(b"ftyp", 16);
        blob.extend(boxed(b"moov", 100));
        let init = blob.len();
        blob.extend(boxed(b"moof", 40));
        blob.extend(boxed(b"mdat", 1000));
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
    }
}
