//! What [`crate::MemoryScanner`] looks into, and under which limits.
//!
//! ZIP archives (stored and deflate members; also a ZIP appended to another
//! file, such as a JPEG with an archive after its end) and gzip streams are
//! unpacked, recursively, and every member is scanned as a file of its own,
//! as clamd does. [`ScanLimits`] bounds the work with clamd's own limits
//! (`MaxRecursion`, `MaxFiles`, `MaxFileSize`, `MaxScanSize`, same
//! defaults); content past one of them is never clean: the verdict is
//! [`UnscannableReason::LimitsExceeded`], as clamd's with
//! `AlertExceedsMax yes`. Other archive formats (7z, RAR, tar, bzip2, xz,
//! zstd, CAB), and members this crate cannot unpack, are
//! [`UnscannableReason::UnsupportedArchive`].

use std::io::{Cursor, Read};

use memchr::memmem;

use crate::verdict::{ExceededLimit, UnscannableReason};

/// Limits on unpacking archives, with clamd's names and defaults
/// (`clamd.conf(5)`). Build with [`ScanLimits::default`] and the `with_*`
/// methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanLimits {
    /// `MaxRecursion`: how deep archives may nest. The object itself is at
    /// depth 0, the members of an archive at its depth + 1; a member at this
    /// depth or deeper is not scanned (default 17, clamd's).
    pub max_recursion: u32,
    /// `MaxFiles`: how many files one scan may look at, the object itself
    /// and every member at every depth counted (directories are not). As
    /// in clamd 1.4, the file that brings the count past the limit is
    /// still scanned (a signature in it is reported) but the verdict
    /// otherwise is [`ExceededLimit::MaxFiles`]; later files are not
    /// scanned (default 10 000, clamd's).
    pub max_files: u64,
    /// `MaxFileSize`: the largest archive member unpacked, in bytes
    /// (default 100 MiB, clamd's). Unlike clamd 1.4, which scans only the
    /// first `MaxFileSize` bytes of a larger member and says nothing, a
    /// larger member is [`ExceededLimit::MaxFileSize`].
    pub max_file_size: u64,
    /// `MaxScanSize`: the most bytes unpacked from archives in one scan,
    /// all members at every depth counted (default 400 MiB, clamd's).
    pub max_scan_size: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_recursion: 17,
            max_files: 10_000,
            max_file_size: 100 * 1024 * 1024,
            max_scan_size: 400 * 1024 * 1024,
        }
    }
}

impl ScanLimits {
    /// Sets `MaxRecursion` (nesting depth).
    pub fn with_max_recursion(mut self, depth: u32) -> Self {
        self.max_recursion = depth;
        self
    }
    /// Sets `MaxFiles` (files per scan).
    pub fn with_max_files(mut self, files: u64) -> Self {
        self.max_files = files;
        self
    }
    /// Sets `MaxFileSize` (largest member, in bytes).
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }
    /// Sets `MaxScanSize` (bytes unpacked per scan).
    pub fn with_max_scan_size(mut self, bytes: u64) -> Self {
        self.max_scan_size = bytes;
        self
    }
}

/// What a scan can match a file against.
pub(crate) trait Matcher {
    /// The name of the first signature `file` matches.
    fn matches(&self, file: &[u8]) -> Option<&str>;
}

/// One scan: a file and everything unpacked from it.
pub(crate) struct Walk<'a, M: Matcher> {
    matcher: &'a M,
    limits: &'a ScanLimits,
    files: u64,
    unpacked: u64,
    /// Why part of the content was not scanned (the first reason met).
    pub(crate) unscannable: Option<UnscannableReason>,
}

/// The kind of container a file is.
enum Container {
    Zip,
    Gzip,
    Unsupported(&'static str),
    None,
}

/// A stop while unpacking: a signature found, or a limit that ends the
/// walk of the current archive.
enum Stop {
    Found(String),
    Limit,
}

impl<'a, M: Matcher> Walk<'a, M> {
    pub(crate) fn new(matcher: &'a M, limits: &'a ScanLimits) -> Self {
        Self {
            matcher,
            limits,
            files: 0,
            unpacked: 0,
            unscannable: None,
        }
    }

    fn note(&mut self, reason: UnscannableReason) {
        self.unscannable.get_or_insert(reason);
    }

    fn exceeded(&mut self, limit: ExceededLimit) {
        self.note(UnscannableReason::LimitsExceeded { limit });
    }

    /// Scans `file` at `depth`: its bytes, then what it holds. Returns the
    /// first signature found; what could not be scanned is in
    /// `self.unscannable`.
    pub(crate) fn scan_file(&mut self, file: &[u8], depth: u32) -> Option<String> {
        self.files += 1;
        if let Some(name) = self.matcher.matches(file) {
            return Some(name.to_owned());
        }
        let stop = match container(file) {
            Container::Zip => self.walk_zip(file, depth),
            Container::Gzip => self.walk_gzip(file, depth),
            Container::Unsupported(format) => {
                self.note(UnscannableReason::UnsupportedArchive {
                    format: format.to_owned(),
                });
                Ok(())
            }
            Container::None => Ok(()),
        };
        match stop {
            Err(Stop::Found(name)) => Some(name),
            Err(Stop::Limit) | Ok(()) => None,
        }
    }

    /// Checks the limits for one more member of `size` bytes (declared) at
    /// `depth`. `Err(Stop::Limit)` ends the archive; `Ok(false)` skips the
    /// member.
    fn admit(&mut self, size: u64, depth: u32) -> Result<bool, Stop> {
        if depth >= self.limits.max_recursion {
            self.exceeded(ExceededLimit::MaxRecursion);
            return Err(Stop::Limit);
        }
        // As clamd: the member that brings the count past the limit is
        // still scanned (a signature in it wins), but the scan is then
        // incomplete; the next member is not scanned.
        if self.files >= self.limits.max_files {
            self.exceeded(ExceededLimit::MaxFiles);
            if self.files > self.limits.max_files {
                return Err(Stop::Limit);
            }
        }
        if size > self.limits.max_file_size {
            self.exceeded(ExceededLimit::MaxFileSize);
            return Ok(false);
        }
        if self.unpacked.saturating_add(size) > self.limits.max_scan_size {
            self.exceeded(ExceededLimit::MaxScanSize);
            return Err(Stop::Limit);
        }
        Ok(true)
    }

    /// Reads a member, never more than the limits allow whatever its
    /// header says, then scans it at `depth`.
    fn unpack(&mut self, mut member: impl Read, what: &str, depth: u32) -> Result<(), Stop> {
        let room = self
            .limits
            .max_file_size
            .min(self.limits.max_scan_size.saturating_sub(self.unpacked));
        let mut data = Vec::new();
        if let Err(e) = member
            .by_ref()
            .take(room.saturating_add(1))
            .read_to_end(&mut data)
        {
            self.note(UnscannableReason::UnsupportedArchive {
                format: format!("{what}: {e}"),
            });
            return Ok(());
        }
        if data.len() as u64 > room {
            // Larger than its header said.
            let limit = if room == self.limits.max_file_size {
                ExceededLimit::MaxFileSize
            } else {
                ExceededLimit::MaxScanSize
            };
            self.exceeded(limit);
            return Err(Stop::Limit);
        }
        self.unpacked += data.len() as u64;
        match self.scan_file(&data, depth) {
            Some(name) => Err(Stop::Found(name)),
            None => Ok(()),
        }
    }

    /// Every ZIP archive in `file` (one that is the file, or ones inside
    /// it anywhere, as clamd's embedded-archive scan finds them).
    fn walk_zip(&mut self, file: &[u8], depth: u32) -> Result<(), Stop> {
        let ranges = upload_core::sniff::embedded_zips(file);
        if ranges.is_empty() {
            return self.walk_one_zip(file, depth);
        }
        for range in ranges {
            self.walk_one_zip(&file[range], depth)?;
        }
        Ok(())
    }

    fn walk_one_zip(&mut self, file: &[u8], depth: u32) -> Result<(), Stop> {
        let mut archive = match zip::ZipArchive::new(Cursor::new(file)) {
            Ok(a) => a,
            Err(e) => {
                self.note(UnscannableReason::UnsupportedArchive {
                    format: format!("zip: {e}"),
                });
                return Ok(());
            }
        };
        for i in 0..archive.len() {
            let (name, size, encrypted, is_dir) = match archive.by_index_raw(i) {
                Ok(m) => (
                    m.name().map(|n| n.into_owned()).unwrap_or_default(),
                    m.size(),
                    m.encrypted(),
                    m.is_dir(),
                ),
                Err(e) => {
                    self.note(UnscannableReason::UnsupportedArchive {
                        format: format!("zip member {i}: {e}"),
                    });
                    continue;
                }
            };
            // A "directory" is scanned like any member when it holds bytes
            // (`evil/` with EICAR in it), as clamd does.
            if is_dir && size == 0 {
                continue;
            }
            if !self.admit(size, depth + 1)? {
                continue;
            }
            if encrypted {
                self.files += 1;
                self.note(UnscannableReason::Encrypted);
                continue;
            }
            let what = format!("zip member {name:?}");
            match archive.by_index(i) {
                Ok(member) => self.unpack(member, &what, depth + 1)?,
                Err(e) => self.note(UnscannableReason::UnsupportedArchive {
                    format: format!("{what}: {e}"),
                }),
            }
        }
        Ok(())
    }

    fn walk_gzip(&mut self, file: &[u8], depth: u32) -> Result<(), Stop> {
        // The size is known only once unpacked: `unpack` bounds it.
        if !self.admit(0, depth + 1)? {
            return Ok(());
        }
        let member = flate2::read::MultiGzDecoder::new(file);
        self.unpack(member, "gzip", depth + 1)
    }
}

/// ZIP local file header, and end of central directory record.
const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
const ZIP_END: &[u8] = b"PK\x05\x06";

fn container(file: &[u8]) -> Container {
    if file.starts_with(ZIP_LOCAL)
        || file.starts_with(ZIP_END)
        || zip_end_at_tail(file)
        || !upload_core::sniff::embedded_zips(file).is_empty()
    {
        return Container::Zip;
    }
    if file.starts_with(&[0x1f, 0x8b]) {
        return Container::Gzip;
    }
    let unsupported: &[(&[u8], &str)] = &[
        (b"7z\xBC\xAF\x27\x1C", "7z"),
        (b"Rar!\x1A\x07", "rar"),
        (b"\xFD7zXZ\x00", "xz"),
        (b"\x28\xB5\x2F\xFD", "zstd"),
        (b"MSCF\x00\x00\x00\x00", "cab"),
    ];
    for (magic, format) in unsupported {
        if file.starts_with(magic) {
            return Container::Unsupported(format);
        }
    }
    // bzip2: "BZh", a block size digit, then a block or end-of-stream magic.
    if file.len() >= 10
        && file.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&file[3])
        && (file[4..10] == *b"\x31\x41\x59\x26\x53\x59"
            || file[4..10] == *b"\x17\x72\x45\x38\x50\x90")
    {
        return Container::Unsupported("bzip2");
    }
    if file.get(257..262) == Some(b"ustar") {
        return Container::Unsupported("tar");
    }
    Container::None
}

/// Whether `file` ends with a ZIP end of central directory record whose
/// comment reaches exactly the end (an archive appended to other bytes).
fn zip_end_at_tail(file: &[u8]) -> bool {
    let from = file.len().saturating_sub(22 + 65_535);
    memmem::rfind_iter(&file[from..], ZIP_END).any(|at| {
        let at = from + at;
        file.get(at + 20..at + 22)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize)
            .is_some_and(|comment| at + 22 + comment == file.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_containers() {
        assert!(matches!(container(b"PK\x03\x04rest"), Container::Zip));
        let mut appended = b"\xFF\xD8\xFF\xE0 a jpeg".to_vec();
        appended.extend_from_slice(ZIP_END);
        appended.extend_from_slice(&[0; 16]);
        appended.extend_from_slice(&3u16.to_le_bytes());
        appended.extend_from_slice(b"abc");
        assert!(matches!(container(&appended), Container::Zip));
        appended.push(b'!');
        assert!(
            matches!(container(&appended), Container::None),
            "a record whose comment does not reach the end is not a ZIP end"
        );
        assert!(matches!(container(&[0x1f, 0x8b, 8, 0]), Container::Gzip));
        assert!(matches!(
            container(b"7z\xBC\xAF\x27\x1C\x00\x04"),
            Container::Unsupported("7z")
        ));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(matches!(container(&tar), Container::Unsupported("tar")));
        assert!(matches!(
            container(b"BZh91AY&SYxxxx"),
            Container::Unsupported("bzip2")
        ));
        assert!(matches!(container(b"BZh is just text"), Container::None));
        assert!(matches!(container(b""), Container::None));
    }
}
