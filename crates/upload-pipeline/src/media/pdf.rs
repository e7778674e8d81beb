//! [`PdfProcessor`]: the first page of a PDF as a poster, by Debian's
//! poppler-utils (`pdfinfo`, `pdftoppm`) run as child processes.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::tool::{self, RunLimits};
use super::{MediaInput, MediaProcessor, MediaRejection, Processed, render_poster};
use crate::codec::{DecodeLimits, Fit, ImageCodec, VariantSpec};
use crate::error::{Error, Result};
use crate::manifest::{DocumentInfo, MediaInfo};

/// What poppler-utils' absence is fixed by.
const INSTALL: &str = "apt install poppler-utils";
/// The type this processor handles.
const PDF: &str = "application/pdf";

/// The limits of [`PdfProcessor`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PdfLimits {
    /// Largest PDF processed, in bytes (default 64 MiB).
    pub max_bytes: u64,
    /// Most pages (default 5000).
    pub max_pages: u64,
    /// Largest side of the first page, in PDF points of 1/72 inch
    /// (default 14 400, 200 inches: the largest page PDF 1.7 allows
    /// without `UserUnit`).
    pub max_page_points: f64,
    /// Most syntax errors poppler may report while reading the document
    /// (default 100): a real document with a few damaged objects is
    /// still previewed; one built of garbage (deeply nested or broken
    /// objects by the thousand) is refused as corrupt.
    pub max_syntax_errors: usize,
    /// Wall-clock limit of each tool run; a run past it is killed and the
    /// PDF refused (default 20 s).
    pub timeout: Duration,
    /// Address-space limit (`RLIMIT_AS`) of each tool run, in bytes
    /// (default 1 GiB): a run that needs more fails and the PDF is refused.
    pub memory: u64,
    /// Longest side of the rendered first page, in pixels (default 2048):
    /// it is rendered just large enough for the largest variant, and
    /// never larger than this.
    pub max_render_side: u32,
}

impl Default for PdfLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_pages: 5000,
            max_page_points: 14_400.0,
            max_syntax_errors: 100,
            timeout: Duration::from_secs(20),
            memory: 1 << 30,
            max_render_side: 2048,
        }
    }
}

impl PdfLimits {
    /// Sets the wall-clock limit of each tool run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the most pages.
    pub fn with_max_pages(mut self, max_pages: u64) -> Self {
        self.max_pages = max_pages;
        self
    }

    /// Sets the largest side of the first page, in points.
    pub fn with_max_page_points(mut self, points: f64) -> Self {
        self.max_page_points = points;
        self
    }

    /// Sets the address-space limit of each tool run, in bytes.
    pub fn with_memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }
}

/// The processor of `application/pdf` uploads (feature `pdf`): the first
/// page rendered by poppler-utils' `pdftoppm` to PNG, then through the
/// [`ImageCodec`] into each variant (the same specs and encoders as
/// images: a poster of the document, no metadata), and the page count in
/// the manifest ([`MediaInfo::Document`]).
///
/// `pdfinfo` reads the page count, encryption and page size first; an
/// encrypted PDF (user or owner password), a broken or truncated one, one
/// over [`PdfLimits`] (bytes, pages, page size, syntax errors) or a tool
/// run past its time limit (killed) is refused
/// ([`Error::MediaRejected`]). Each tool runs on a private temporary copy
/// (mode 0600, deleted after) with no stdin, an empty environment, an
/// address-space limit, no core dumps and no file writes. Poppler has no
/// JavaScript engine and never runs a document's scripts, actions or
/// forms' calculations; it opens no network connection.
///
/// When `pdfinfo` or `pdftoppm` is not installed, a PDF is refused as
/// unsupported naming `apt install poppler-utils`
/// ([`Error::MediaUnsupported`]).
///
/// Not registered by default: add it with
/// [`WorkerConfig::with_processor`](crate::WorkerConfig::with_processor).
#[derive(Debug, Clone)]
pub struct PdfProcessor {
    codec: Arc<dyn ImageCodec>,
    limits: PdfLimits,
    decode_limits: DecodeLimits,
    pdfinfo: Option<PathBuf>,
    pdftoppm: Option<PathBuf>,
}

impl PdfProcessor {
    /// Renders posters through `codec`, under the default [`PdfLimits`],
    /// with `pdfinfo` and `pdftoppm` found on `PATH`.
    pub fn new(codec: Arc<dyn ImageCodec>) -> Self {
        Self {
            codec,
            limits: PdfLimits::default(),
            decode_limits: DecodeLimits::default(),
            pdfinfo: None,
            pdftoppm: None,
        }
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: PdfLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs these programs instead of `pdfinfo` and `pdftoppm` from `PATH`.
    pub fn with_tools(mut self, pdfinfo: impl Into<PathBuf>, pdftoppm: impl Into<PathBuf>) -> Self {
        self.pdfinfo = Some(pdfinfo.into());
        self.pdftoppm = Some(pdftoppm.into());
        self
    }

    fn rejected(&self, reason: MediaRejection) -> Error {
        Error::MediaRejected {
            content_type: PDF.to_owned(),
            reason,
        }
    }

    fn run(
        &self,
        program: &Option<PathBuf>,
        name: &'static str,
        args: &[&OsStr],
        max_stdout: usize,
    ) -> Result<tool::Ran> {
        tool::run(
            &tool::program(program, name),
            args,
            RunLimits {
                timeout: self.limits.timeout,
                memory: self.limits.memory,
                max_stdout,
            },
            name,
            PDF,
            INSTALL,
        )
    }
}

/// What `pdfinfo` says of a document.
#[derive(Debug, Clone, PartialEq)]
struct Info {
    pages: u64,
    encrypted: bool,
    /// The first page's size in points, if given.
    page_size: Option<(f64, f64)>,
}

/// Parses `pdfinfo`'s output (`Pages:`, `Encrypted:`, `Page size:`).
fn parse_info(text: &str) -> Option<Info> {
    let mut pages = None;
    let mut encrypted = false;
    let mut page_size = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim() {
            "Pages" => pages = value.parse().ok(),
            "Encrypted" => encrypted = value.starts_with("yes"),
            "Page size" => {
                // `612 x 792 pts (letter)`, `9e+06 x 9e+06 pts`
                let mut it = value.split_whitespace();
                let w = it.next().and_then(|v| v.parse::<f64>().ok());
                let _x = it.next();
                let h = it.next().and_then(|v| v.parse::<f64>().ok());
                if let (Some(w), Some(h)) = (w, h) {
                    page_size = Some((w, h));
                }
            }
            _ => {}
        }
    }
    Some(Info {
        pages: pages?,
        encrypted,
        page_size,
    })
}

/// The longest side, in pixels, to render a page of `w` × `h` points at
/// for `specs`: enough for the most demanding one, at most `max`, at
/// least 16.
fn render_side(w: f64, h: f64, specs: &[VariantSpec], max: u32) -> u32 {
    let long = w.max(h).max(1.0);
    let need = specs
        .iter()
        .map(|s| {
            let (sw, sh) = (
                f64::from(s.width) / w.max(1.0),
                f64::from(s.height) / h.max(1.0),
            );
            let scale = match s.fit {
                Fit::Contain => sw.min(sh),
                _ => sw.max(sh),
            };
            (scale * long).ceil()
        })
        .fold(0.0, f64::max);
    (need.min(f64::from(max)) as u32).max(16)
}

impl MediaProcessor for PdfProcessor {
    fn name(&self) -> &'static str {
        "pdf"
    }

    /// `application/pdf`.
    fn handles(&self, content_type: &str) -> bool {
        content_type == PDF
    }

    fn process(&self, input: MediaInput) -> Result<Processed> {
        let MediaInput { body, variants, .. } = input;
        if body.len() as u64 > self.limits.max_bytes {
            return Err(self.rejected(MediaRejection::TooLarge {
                bytes: body.len() as u64,
                max: self.limits.max_bytes,
            }));
        }
        let file = tool::private_copy(&body, ".pdf")?;
        drop(body);
        let path = file.path().as_os_str();
        let ran = tracing::info_span!("pdfinfo")
            .in_scope(|| self.run(&self.pdfinfo, "pdfinfo", &[path], 1 << 20))?;
        let stdout = String::from_utf8_lossy(&ran.stdout);
        if ran.stderr.contains("Incorrect password") {
            return Err(self.rejected(MediaRejection::Encrypted));
        }
        let syntax_errors = ran.stderr.matches("Syntax Error").count();
        if syntax_errors > self.limits.max_syntax_errors {
            return Err(self.rejected(MediaRejection::Corrupt {
                detail: format!(
                    "pdfinfo reported {syntax_errors} syntax errors or more (at most {} allowed)",
                    self.limits.max_syntax_errors
                ),
            }));
        }
        let info = match (ran.status.success(), parse_info(&stdout)) {
            (true, Some(info)) => info,
            (true, None) => {
                return Err(self.rejected(MediaRejection::Corrupt {
                    detail: "pdfinfo gave no page count".to_owned(),
                }));
            }
            (false, _) => {
                return Err(self.rejected(MediaRejection::Corrupt {
                    detail: ran.error_detail("pdfinfo"),
                }));
            }
        };
        if info.encrypted {
            return Err(self.rejected(MediaRejection::Encrypted));
        }
        if info.pages == 0 {
            return Err(self.rejected(MediaRejection::Corrupt {
                detail: "no pages".to_owned(),
            }));
        }
        if info.pages > self.limits.max_pages {
            return Err(self.rejected(MediaRejection::TooManyPages {
                pages: info.pages,
                max: self.limits.max_pages,
            }));
        }
        let Some((w, h)) = info.page_size else {
            return Err(self.rejected(MediaRejection::Corrupt {
                detail: "pdfinfo gave no page size".to_owned(),
            }));
        };
        let max_pt = self.limits.max_page_points;
        if !(w.is_finite() && h.is_finite()) || w <= 0.0 || h <= 0.0 || w > max_pt || h > max_pt {
            return Err(self.rejected(MediaRejection::PageTooLarge {
                width_pt: w,
                height_pt: h,
                max_pt,
            }));
        }
        let mut document = DocumentInfo::new(info.pages);
        if variants.is_empty() {
            return Ok(Processed {
                media: Some(MediaInfo::Document(document)),
                ..Processed::default()
            });
        }
        let side = render_side(w, h, &variants, self.limits.max_render_side).to_string();
        // The first page only, scaled so its longest side is `side`
        // pixels, as one PNG on stdout.
        let args: [&OsStr; 10] = [
            "-f".as_ref(),
            "1".as_ref(),
            "-l".as_ref(),
            "1".as_ref(),
            "-singlefile".as_ref(),
            "-png".as_ref(),
            "-scale-to".as_ref(),
            side.as_ref(),
            "--".as_ref(),
            path,
        ];
        // An 8-bit RGB PNG of side² pixels is smaller than 4 bytes a pixel.
        let max_png = (self.limits.max_render_side as usize).pow(2) * 4 + (1 << 20);
        let ran = tracing::info_span!("pdftoppm", side = %side)
            .in_scope(|| self.run(&self.pdftoppm, "pdftoppm", &args, max_png))?;
        drop(file);
        if !ran.status.success() || ran.stdout.is_empty() {
            return Err(self.rejected(MediaRejection::Corrupt {
                detail: ran.error_detail("pdftoppm"),
            }));
        }
        let (_, variants, placeholder) = render_poster(
            self.codec.as_ref(),
            &ran.stdout,
            &self.decode_limits,
            &variants,
            "the rendered first page",
            |reason| self.rejected(reason),
        )?;
        document.placeholder = placeholder;
        Ok(Processed {
            variants,
            image: None,
            media: Some(MediaInfo::Document(document)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdfinfo_output_is_parsed() {
        let text = "Producer:        cairo 1.16.0\nPages:           3\nEncrypted:       no\nPage size:       612 x 792 pts (letter)\nPage rot:        0\n";
        assert_eq!(
            parse_info(text),
            Some(Info {
                pages: 3,
                encrypted: false,
                page_size: Some((612.0, 792.0))
            })
        );
        let enc = "Pages:           3\nEncrypted:       yes (print:yes copy:yes change:yes addNotes:yes algorithm:AES-256)\nPage size:       9e+06 x 9e+06 pts\n";
        let info = parse_info(enc).unwrap();
        assert!(info.encrypted);
        assert_eq!(info.page_size, Some((9e6, 9e6)));
        assert_eq!(parse_info("Encrypted: no\n"), None);
    }

    #[test]
    fn render_side_fits_the_largest_variant() {
        let specs = VariantSpec::defaults();
        // Letter portrait: medium (1024 contain) needs 1024 on the long side.
        assert_eq!(render_side(612.0, 792.0, &specs, 2048), 1024);
        // A cover crop of a tall page needs more than the box.
        let cover = [VariantSpec::thumb().with_fit(Fit::Cover)];
        assert_eq!(render_side(100.0, 1000.0, &cover, 2048), 2048);
        assert_eq!(render_side(500.0, 1000.0, &cover, 2048), 512);
        assert_eq!(render_side(612.0, 792.0, &[], 2048), 16);
    }
}
