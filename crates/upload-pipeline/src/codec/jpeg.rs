//! A structural check of JPEG files, run before decoding.
//!
//! The `image` crate decodes JPEG with `zune-jpeg` in non-strict mode,
//! which fills the missing part of a truncated file with grey instead of
//! failing. This walk refuses a file whose marker structure ends before its
//! EOI marker, so a truncated upload becomes an error rather than a
//! half-grey variant.

/// Walks the marker segments and entropy-coded data of a JPEG and returns
/// the reason when the file ends before its EOI marker (`FF D9`) or is not
/// a JPEG at all. Bytes after EOI (e.g. an appended video) are ignored.
pub(super) fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("missing JPEG SOI marker".to_owned());
    }
    let len = bytes.len();
    let mut pos = 2;
    loop {
        // Find the next marker; tolerate stray bytes between segments the
        // way libjpeg does, and any number of 0xFF fill bytes.
        while pos < len && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < len && bytes[pos] == 0xFF {
            pos += 1;
        }
        if pos >= len {
            return Err(format!(
                "truncated: the file ends after {len} bytes, before the EOI marker"
            ));
        }
        let marker = bytes[pos];
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: RSTn, TEM, a stray SOI.
            0xD0..=0xD8 | 0x01 => continue,
            0x00 => continue,
            _ => {}
        }
        if pos + 2 > len {
            return Err(format!(
                "truncated inside the length of marker 0xFF{marker:02X}"
            ));
        }
        let seg_len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
        if seg_len < 2 {
            return Err(format!(
                "marker 0xFF{marker:02X} has an invalid length {seg_len}"
            ));
        }
        if pos + seg_len > len {
            return Err(format!(
                "truncated inside marker 0xFF{marker:02X} (segment of {seg_len} bytes at offset {})",
                pos - 2
            ));
        }
        pos += seg_len;
        if marker == 0xDA {
            // Start of scan: skip entropy-coded data up to the next marker
            // other than a stuffed zero or a restart marker.
            loop {
                while pos < len && bytes[pos] != 0xFF {
                    pos += 1;
                }
                if pos + 1 >= len {
                    return Err(format!(
                        "truncated: the scan data runs to the end of the file ({len} bytes) without an EOI marker"
                    ));
                }
                match bytes[pos + 1] {
                    0x00 | 0xD0..=0xD7 | 0xFF => pos += 1,
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_complete;

    /// SOI, an APP0 segment of 4 bytes, SOS with a 1-byte header payload,
    /// entropy data with a stuffed 0xFF00 and a restart marker, then EOI.
    const MINIMAL: &[u8] = &[
        0xFF, 0xD8, // SOI
        0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, // APP0
        0xFF, 0xDA, 0x00, 0x03, 0x01, // SOS
        0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, // scan data
        0xFF, 0xD9, // EOI
    ];

    #[test]
    fn complete_file_passes_and_every_truncation_fails() {
        assert_eq!(check_complete(MINIMAL), Ok(()));
        for cut in 0..MINIMAL.len() {
            assert!(check_complete(&MINIMAL[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_bytes_after_eoi_are_ignored() {
        let mut with_trailer = MINIMAL.to_vec();
        with_trailer.extend_from_slice(b"....ftypmp42 appended video");
        assert_eq!(check_complete(&with_trailer), Ok(()));
    }

    #[test]
    fn a_segment_length_past_the_end_fails() {
        let bytes = [0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0x00];
        assert!(check_complete(&bytes).unwrap_err().contains("0xFFE1"));
        assert!(check_complete(b"not a jpeg").is_err());
    }
}
