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
    let Some(found) = infer::get(head).map(|t| Sniffed {
        mime: t.mime_type(),
        extension: t.extension(),
    }) else {
        // `infer` knows HEIF only by a `heic` or `avif` brand; a HEIF whose
        // brands name no codec (`mif1`, `msf1`, `miaf` alone) is still one.
        return heif_brand_type(head).ok_or(Unrecognized::Unknown);
    };
    if matches!(found.mime, "image/heif" | "image/heic" | "image/avif")
        && let Some(refined) = heif_brand_type(head)
    {
        return Ok(refined);
    }
    Ok(found)
}

/// The type a HEIF file's `ftyp` brands name (ISO/IEC 23008-12 and the
/// AVIF specification): the major brand when it is decisive, else the
/// first decisive compatible brand. `mif1`/`msf1`/`miaf` say only
/// "HEIF", so an iPhone-style file whose major brand is `mif1` and whose
/// compatible brands list `heic` is HEIC (HEVC-coded), and one listing
/// `avif` is AVIF.
fn heif_brand_type(head: &[u8]) -> Option<Sniffed> {
    let size = u32::from_be_bytes(head.get(0..4)?.try_into().ok()?) as usize;
    if head.get(4..8)? != b"ftyp" || size < 16 {
        return None;
    }
    let major = head.get(8..12)?;
    let compatible = head.get(16..size.min(head.len()))?.chunks_exact(4);
    let brands = || std::iter::once(major).chain(compatible.clone());
    let decisive = brands().find_map(|brand| match brand {
        b"avif" | b"avis" => Some(Sniffed {
            mime: "image/avif",
            extension: "avif",
        }),
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => Some(Sniffed {
            mime: "image/heic",
            extension: "heic",
        }),
        _ => None,
    });
    decisive.or_else(|| {
        brands()
            .any(|b| matches!(b, b"mif1" | b"msf1" | b"miaf"))
            .then_some(Sniffed {
                mime: "image/heif",
                extension: "heif",
            })
    })
}

/// The ZIP archives inside `bytes`, wherever they sit (appended to an
/// image, inserted in its middle, followed by other bytes), as the byte
/// ranges a ZIP reader can open: from the archive's first byte to the end
/// of its end-of-central-directory record's comment (clamped to `bytes`).
///
/// An archive is recognised by two records that agree: an
/// end-of-central-directory record (`PK\x05\x06`) and, the central
/// directory's size before it, the first central directory header
/// (`PK\x01\x02`) — or, for ZIP64, the ZIP64 locator (`PK\x06\x07`)
/// right before it. Random bytes match both by chance about once in 2^64
/// positions, so a photo is not mistaken for one. An image holding an
/// archive is a polyglot (an image to a decoder, an archive to `unzip`),
/// the shape of files hidden behind a picture.
///
/// An archive with no entry (its end record alone) holds nothing and is
/// not reported; nor is one inside another reported one (it is part of
/// that archive's content).
///
/// ```
/// use upload_core::sniff::embedded_zips;
/// assert!(embedded_zips(b"\xFF\xD8\xFF\xE0 a JPEG").is_empty());
/// // An end record that says 16 bytes of central directory precede it,
/// // where there are none: random bytes, not an archive.
/// let mut fake = b"\xFF\xD8\xFF\xE0 a JPEG".to_vec();
/// fake.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\x10\0\0\0\0\0\0\0\0\0");
/// assert!(embedded_zips(&fake).is_empty());
/// ```
pub fn embedded_zips(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], b"PK\x05\x06").map(|p| from + p) {
        from = pos + 1;
        let (Some(cd_size), Some(cd_offset), Some(comment)) = (
            u32_at(pos + 12),
            u32_at(pos + 16),
            bytes
                .get(pos + 20..pos + 22)
                .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]]))),
        ) else {
            continue;
        };
        let end = (pos + 22 + comment).min(bytes.len());
        let zip64 = pos >= 20 && bytes[pos - 20..].starts_with(b"PK\x06\x07");
        if cd_size == 0 {
            // No entry: nothing is hidden in it.
            continue;
        }
        let start = pos
            .checked_sub(cd_size)
            .filter(|&cd| bytes[cd..].starts_with(b"PK\x01\x02"))
            .map(|cd| cd.saturating_sub(cd_offset));
        match (start, zip64) {
            (Some(start), _) => found.push(start..end),
            (None, true) => found.push(0..end),
            (None, false) => {}
        }
    }
    // An archive inside another (a member stored, or deflated in stored
    // blocks) is that archive's content, not one more beside it.
    let outer = found.clone();
    found.retain(|r| {
        !outer
            .iter()
            .any(|o| o != r && o.start <= r.start && r.end <= o.end)
    });
    found
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a declared content type and a sniffed one name the same type,
/// comparing essences and accepting the common aliases (`image/jpg` and
/// `image/pjpeg` for `image/jpeg`, `image/x-png` for `image/png`). A
/// declared `image/heif` also matches a sniffed `image/heic` (HEIC is HEIF
/// with HEVC inside; browsers and phones label it either way), but a
/// declared `image/heic` does not match AVIF.
pub fn same_type(declared: &str, sniffed: &str) -> bool {
    if crate::policy::essence(declared) == "image/heif" && sniffed == "image/heic" {
        return true;
    }
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
        // Its `ftyp` lists `heic`: HEIC.
        assert_eq!(sniff(&long).map(|s| s.mime), Ok("image/heic"));
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
        // HEIF by brands: major `mif1` with `heic` compatible (libheif's
        // example photo), an iPhone's major `heic`, AVIF, and a HEIF that
        // names no codec.
        let ftyp = |brands: &[&[u8; 4]]| {
            let mut b = ((8 + 4 * brands.len() + 4) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(brands[0]);
            b.extend_from_slice(&[0, 0, 0, 0]);
            for c in &brands[1..] {
                b.extend_from_slice(*c);
            }
            b.extend_from_slice(&[0, 0, 0, 8, b'm', b'e', b't', b'a']);
            b
        };
        let mime = |b: Vec<u8>| sniff(&b).unwrap().mime;
        assert_eq!(
            mime(ftyp(&[b"mif1", b"mif1", b"heic", b"hevc"])),
            "image/heic"
        );
        assert_eq!(mime(ftyp(&[b"heic", b"mif1", b"heic"])), "image/heic");
        assert_eq!(
            mime(ftyp(&[b"avif", b"avif", b"mif1", b"miaf"])),
            "image/avif"
        );
        assert_eq!(mime(ftyp(&[b"mif1", b"mif1", b"avif"])), "image/avif");
        assert_eq!(mime(ftyp(&[b"mif1", b"mif1", b"miaf"])), "image/heif");
        assert_eq!(sniff(&ftyp(&[b"heic", b"mif1"])).unwrap().extension, "heic");
        assert_eq!(mime(ftyp(&[b"msf1", b"iso8"])), "image/heif");
        assert_eq!(
            sniff(&ftyp(&[b"isom", b"iso2", b"mp41"])).unwrap().mime,
            "video/mp4"
        );
        assert_eq!(sniff(&ftyp(&[b"qt  "])).unwrap().mime, "video/quicktime");
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
        assert!(same_type("image/heif", "image/heic"));
        assert!(same_type("image/HEIC", "image/heic"));
        assert!(!same_type("image/heic", "image/avif"));
        assert!(!same_type("image/heif", "image/avif"));
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
    fn zips_are_found_anywhere_when_their_records_agree() {
        // A one-member stored ZIP: local header, data, central directory
        // header, end record.
        let zip = {
            let name = b"eicar.com";
            let data = b"payload";
            let mut z = Vec::new();
            z.extend_from_slice(b"PK\x03\x04");
            z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            z.extend_from_slice(&(data.len() as u32).to_le_bytes());
            z.extend_from_slice(&(data.len() as u32).to_le_bytes());
            z.extend_from_slice(&(name.len() as u16).to_le_bytes());
            z.extend_from_slice(&[0, 0]);
            z.extend_from_slice(name);
            z.extend_from_slice(data);
            let cd = z.len();
            z.extend_from_slice(b"PK\x01\x02");
            z.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            z.extend_from_slice(&(data.len() as u32).to_le_bytes());
            z.extend_from_slice(&(data.len() as u32).to_le_bytes());
            z.extend_from_slice(&(name.len() as u16).to_le_bytes());
            z.extend_from_slice(&[0; 12]);
            z.extend_from_slice(name);
            let cd_size = z.len() - cd;
            z.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
            z.extend_from_slice(&(cd_size as u32).to_le_bytes());
            z.extend_from_slice(&(cd as u32).to_le_bytes());
            z.extend_from_slice(&[0, 0]);
            z
        };
        let jpeg = b"\xFF\xD8\xFF\xE0 pixels \xFF\xD9".to_vec();
        let n = jpeg.len();
        assert!(embedded_zips(&jpeg).is_empty());
        assert!(embedded_zips(b"").is_empty());
        assert_eq!(embedded_zips(&zip), vec![0..zip.len()]);
        assert_eq!(
            embedded_zips(&[jpeg.clone(), zip.clone()].concat()),
            vec![n..n + zip.len()],
            "appended"
        );
        assert_eq!(
            embedded_zips(&[jpeg.clone(), zip.clone(), b"\n".to_vec()].concat()),
            vec![n..n + zip.len()],
            "appended, then a newline"
        );
        assert_eq!(
            embedded_zips(&[jpeg.clone(), zip.clone(), jpeg.clone()].concat()),
            vec![n..n + zip.len()],
            "in the middle"
        );
        // An end record whose central directory is not where it says is
        // random bytes, not an archive.
        let mut lone = jpeg.clone();
        lone.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\x10\0\0\0\0\0\0\0\0\0");
        assert!(embedded_zips(&lone).is_empty());
        // Truncated end records never index past the input.
        for cut in 1..22 {
            let t = &zip[..zip.len() - cut];
            assert!(embedded_zips(t).is_empty(), "{cut}");
        }
    }
}
