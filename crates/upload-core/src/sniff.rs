//! The real content type of an object, from its magic bytes.
//!
//! The declared `Content-Type` and the file extension are never trusted: a
//! client controls both. [`sniff`] looks only at the bytes, using the
//! [`infer`] crate's signature table.

/// How many leading bytes [`sniff`] needs to see: 8 KiB, enough for the
/// binary signatures `infer` knows (ZIP-based formats look furthest in).
/// Text formats can need more (HTML or XML after more than 8 KiB of
/// whitespace); none of them is an upload type the policies allow.
pub const SNIFF_LEN: usize = 8192;

/// A content type recognised from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// MIME type, e.g. `image/jpeg`.
    pub mime: &'static str,
    /// The usual extension without the dot, e.g. `jpg`.
    pub extension: &'static str,
}

/// Why [`sniff`] recognised no content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unrecognized {
    /// The object has no bytes at all (a 0-byte upload): there is no
    /// type to recognise, and no later read can find one.
    #[error("empty object (0 bytes)")]
    Empty,
    /// The bytes match no known signature (plain text, random bytes, a
    /// format `infer` does not know).
    #[error("content type not recognised from magic bytes")]
    Unknown,
}

/// Recognises the content type of `head`, the first bytes of an object
/// (pass at least [`SNIFF_LEN`] bytes when the object has them).
///
/// # Errors
/// [`Unrecognized::Empty`] for zero bytes, [`Unrecognized::Unknown`] when
/// no known signature matches (plain text, random bytes).
pub fn sniff(head: &[u8]) -> Result<Sniffed, Unrecognized> {
    if head.is_empty() {
        return Err(Unrecognized::Empty);
    }
    infer::get(head)
        .map(|t| Sniffed {
            mime: t.mime_type(),
            extension: t.extension(),
        })
        .ok_or(Unrecognized::Unknown)
}

/// The most bytes a ZIP end-of-central-directory record takes: 22, then a
/// comment of up to 65,535 bytes.
const MAX_ZIP_EOCD: usize = 22 + 65_535;

/// Whether `bytes` end with a ZIP archive: a ZIP end-of-central-directory
/// record (`PK\x05\x06`) whose comment ends exactly at the last byte,
/// within the last 65,557 bytes, which is where ZIP readers look for it.
/// An image that ends so is a polyglot (an image to a decoder, an archive
/// to `unzip`), the shape of an archive hidden behind a picture; clamd does
/// not always unpack such an archive to its limits before answering `OK`.
///
/// ```
/// assert!(!upload_core::sniff::ends_with_zip(b"\xFF\xD8\xFF\xE0 a JPEG"));
/// let mut polyglot = b"\xFF\xD8\xFF\xE0 a JPEG".to_vec();
/// polyglot.extend_from_slice(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
/// assert!(upload_core::sniff::ends_with_zip(&polyglot));
/// ```
pub fn ends_with_zip(bytes: &[u8]) -> bool {
    let Some(last) = bytes.len().checked_sub(22) else {
        return false;
    };
    let first = bytes.len().saturating_sub(MAX_ZIP_EOCD);
    (first..=last).rev().any(|i| {
        bytes[i..i + 4] == *b"PK\x05\x06"
            && i + 22 + usize::from(u16::from_le_bytes([bytes[i + 20], bytes[i + 21]]))
                == bytes.len()
    })
}

/// Whether a declared content type and a sniffed one name the same type,
/// comparing essences and accepting the common aliases (`image/jpg` and
/// `image/pjpeg` for `image/jpeg`, `image/x-png` for `image/png`).
pub fn same_type(declared: &str, sniffed: &str) -> bool {
    fn canonical(t: &str) -> String {
        let e = crate::policy::essence(t);
        match e.as_str() {
            "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
            "image/x-png" => "image/png".into(),
            "application/x-pdf" => "application/pdf".into(),
            _ => e,
        }
    }
    canonical(declared) == canonical(sniffed)
}

/// The extension to give a key for an allowed content type
/// (`image/jpeg` → `jpg`), or `None` for a type this table does not know.
///
/// Used when the server picks a key from the declared type; the client's
/// file name is never used.
pub fn extension_for(content_type: &str) -> Option<&'static str> {
    Some(match crate::policy::essence(content_type).as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/avif" => "avif",
        "image/heic" => "heic",
        "image/heif" => "heif",
        "image/jxl" => "jxl",
        "image/tiff" => "tif",
        "image/bmp" => "bmp",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "audio/mpeg" => "mp3",
        "text/plain" => "txt",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `sniff` fuzz target: 338 bytes that are both an
    /// ISO-BMFF (HEIF `ftyp` box declaring 16 KiB) and a PDF (`%PDF` in
    /// the first 1024 bytes, where `infer` looks for it). Alone it sniffs
    /// as PDF; followed by enough bytes to hold its `ftyp` box, as HEIF.
    /// The worker sniffs the first `SNIFF_LEN` bytes of the object, so the
    /// answer is always the one for what it read; a polyglot whose declared
    /// type is not that answer is rejected. Image magic at offset 0 wins
    /// over an embedded `%PDF`.
    #[test]
    fn polyglots_sniff_as_what_the_worker_reads() {
        let input = include_bytes!("../tests/data/fuzz/sniff-heif-ftyp-past-sniff-len.bin");
        assert_eq!(sniff(input).map(|s| s.mime), Ok("application/pdf"));
        let mut long = input.to_vec();
        while long.len() < 3 * SNIFF_LEN {
            long.extend_from_slice(input);
        }
        assert_eq!(sniff(&long).map(|s| s.mime), Ok("image/heif"));
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.extend_from_slice(input);
        assert_eq!(sniff(&jpeg).map(|s| s.mime), Ok("image/jpeg"));
    }

    #[test]
    fn sniffs_magic_bytes_not_names() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
        assert_eq!(
            sniff(&jpeg),
            Ok(Sniffed {
                mime: "image/jpeg",
                extension: "jpg"
            })
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png).unwrap().mime, "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n").unwrap().mime, "application/pdf");
        assert_eq!(sniff(b"GIF89a\x01\x00").unwrap().mime, "image/gif");
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 ").unwrap().mime, "image/webp");
        assert_eq!(
            sniff(b"just some text that says it is a jpg"),
            Err(Unrecognized::Unknown)
        );
        assert_eq!(sniff(b"\0"), Err(Unrecognized::Unknown));
    }

    #[test]
    fn zero_bytes_are_empty_not_unknown() {
        assert_eq!(sniff(b""), Err(Unrecognized::Empty));
        assert_eq!(Unrecognized::Empty.to_string(), "empty object (0 bytes)");
    }

    #[test]
    fn same_type_accepts_aliases_only() {
        assert!(same_type("image/jpeg", "image/jpeg"));
        assert!(same_type("IMAGE/JPG; q=1", "image/jpeg"));
        assert!(same_type("image/x-png", "image/png"));
        assert!(!same_type("image/jpeg", "application/pdf"));
        assert!(!same_type("image/png", "image/jpeg"));
    }

    #[test]
    fn extension_table() {
        assert_eq!(extension_for("image/jpeg"), Some("jpg"));
        assert_eq!(extension_for("IMAGE/PNG; x=y"), Some("png"));
        assert_eq!(extension_for("application/x-msdownload"), None);
    }

    #[test]
    fn zip_at_the_end_only_with_a_consistent_record() {
        let eocd = |comment: &[u8]| {
            let mut r = b"PK\x05\x06".to_vec();
            r.extend_from_slice(&[0; 16]);
            r.extend_from_slice(&(comment.len() as u16).to_le_bytes());
            r.extend_from_slice(comment);
            r
        };
        let jpeg = b"\xFF\xD8\xFF\xE0 pixels \xFF\xD9".to_vec();
        assert!(!ends_with_zip(&jpeg));
        assert!(!ends_with_zip(b""));
        assert!(ends_with_zip(&[jpeg.clone(), eocd(b"")].concat()));
        assert!(ends_with_zip(&[jpeg.clone(), eocd(b"a comment")].concat()));
        // A record whose comment length does not reach the end exactly is
        // not one (random bytes that happen to hold the signature).
        let mut short = [jpeg.clone(), eocd(b"abc")].concat();
        short.push(0);
        assert!(!ends_with_zip(&short));
        // Past the 65,557 bytes a reader searches, it is not found either.
        let far = [eocd(b""), vec![0; 70_000]].concat();
        assert!(!ends_with_zip(&far));
    }
}
