//! Archive fixtures for scanner tests, built in memory at test time: ZIPs
//! holding a file, nested ZIPs, ZIPs with many members or many unpacked
//! bytes, an encrypted member, gzip. [`crate::testkit`] and the clamd and
//! worker tests build their cases with these; [`crate::eicar`] and
//! [`crate::test_marker`] give the content to hide.
//!
//! Every function returns the archive's bytes, or an
//! [`std::io::Error`] when the ZIP writer refuses (e.g. a member over
//! 4 GiB).

use std::io::{Cursor, Write};

use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

fn to_io(e: zip::result::ZipError) -> std::io::Error {
    std::io::Error::other(e)
}

/// How members are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Method 0: the member's bytes as they are (visible in the archive).
    Stored,
    /// Method 8 (deflate): the member's bytes are not visible in the
    /// archive, so only a scanner that unpacks it can see them.
    Deflated,
}

/// A ZIP archive of `members` (name, content), in order.
///
/// # Errors
/// The ZIP writer's error, as an [`std::io::Error`].
pub fn zip(members: &[(&str, &[u8])], packing: Packing) -> std::io::Result<Vec<u8>> {
    let method = match packing {
        Packing::Stored => CompressionMethod::Stored,
        Packing::Deflated => CompressionMethod::Deflated,
    };
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(*name, options).map_err(to_io)?;
        w.write_all(data)?;
    }
    Ok(w.finish().map_err(to_io)?.into_inner())
}

/// `file` (named `inner.bin` in the innermost archive) inside `depth`
/// nested deflated ZIPs: at depth 0 it is `file` itself, at depth 1 a ZIP
/// holding it, and so on. clamd (`MaxRecursion 17`) finds a file at depth
/// 16 and answers `Heuristics.Limits.Exceeded.MaxRecursion` at depth 17.
///
/// # Errors
/// As [`zip()`].
pub fn nested_zip(file: &[u8], depth: u32) -> std::io::Result<Vec<u8>> {
    let mut data = file.to_vec();
    for level in 0..depth {
        let name = if level == 0 {
            "inner.bin".to_owned()
        } else {
            format!("level-{level}.zip")
        };
        data = zip(&[(name.as_str(), &data)], Packing::Deflated)?;
    }
    Ok(data)
}

/// A deflated ZIP of `count` one-byte members (`f0.txt`, `f1.txt`...),
/// then `last` as `last.bin` when given. With the archive itself, a scan
/// looks at `count + 1` files (+ 1 with `last`).
///
/// # Errors
/// As [`zip()`].
pub fn zip_with_files(count: usize, last: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
    let names: Vec<String> = (0..count).map(|i| format!("f{i}.txt")).collect();
    let mut members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    if let Some(last) = last {
        members.push(("last.bin", last));
    }
    zip(&members, Packing::Deflated)
}

/// A deflated ZIP of `count` members of `member_size` zero bytes each
/// (`count * member_size` bytes once unpacked, a few KiB per MiB packed).
///
/// # Errors
/// As [`zip()`].
pub fn zip_of_zeros(count: usize, member_size: usize) -> std::io::Result<Vec<u8>> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(false);
    let zeros = vec![0u8; member_size.min(1 << 20)];
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..count {
        w.start_file(format!("zeros-{i}.bin"), options)
            .map_err(to_io)?;
        let mut left = member_size;
        while left > 0 {
            let n = left.min(zeros.len());
            w.write_all(&zeros[..n])?;
            left -= n;
        }
    }
    Ok(w.finish().map_err(to_io)?.into_inner())
}

/// A stored ZIP holding `file` as `secret.bin` with the "encrypted" flag
/// set (general purpose bit 0, in the local and central headers): what a
/// password-protected member looks like to a scanner that cannot decrypt
/// it (clamd with `AlertEncrypted yes`: `Heuristics.Encrypted.Zip`).
///
/// # Errors
/// As [`zip()`].
pub fn encrypted_zip(file: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut data = zip(&[("secret.bin", file)], Packing::Stored)?;
    let flag = |data: &mut Vec<u8>, signature: &[u8], offset: usize| {
        if let Some(at) = memchr::memmem::find(data, signature)
            && let Some(b) = data.get_mut(at + offset)
        {
            *b |= 1;
        }
    };
    flag(&mut data, b"PK\x03\x04", 6);
    flag(&mut data, b"PK\x01\x02", 8);
    Ok(data)
}

/// `file` compressed with gzip.
///
/// # Errors
/// A write error of the compressor.
pub fn gzip(file: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(file)?;
    gz.finish()
}

/// Pseudo-random bytes (xorshift from `seed`), incompressible and unlike
/// any signature: filler for large test files.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    seed |= 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}
