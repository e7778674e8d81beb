//! Optional signed headers of presigned PUTs, and `Content-Disposition`
//! values for downloads.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use upload_core::{PartChecksum, Tags};

/// Server-side encryption asked of S3 for the stored object (the
/// `x-amz-server-side-encryption*` headers, signed into the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// `AES256`: S3-managed keys (SSE-S3).
    Aes256,
    /// `aws:kms`, with a key ID or ARN, or the bucket's default KMS key.
    AwsKms {
        /// KMS key ID or ARN; `None` for the AWS-managed `aws/s3` key.
        key_id: Option<String>,
    },
}

/// Headers a presigned PUT can pin besides `Content-Type`. Each one set is
/// signed: the client must send it with exactly this value, or S3 answers
/// 403 `SignatureDoesNotMatch`.
///
/// Create-only by default: `If-None-Match: *` is signed in, so the URL
/// writes the key once and a replay of it (inside its expiry) gets
/// 412 `PreconditionFailed` instead of replacing the original (S3
/// conditional writes). [`PutHeaders::with_create_only`]`(false)` signs a
/// PUT that may replace an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutHeaders {
    /// Sign `If-None-Match: *`: the PUT fails with 412 when the key
    /// exists (default `true`).
    pub create_only: bool,
    /// Exact body size in bytes (`Content-Length`).
    pub content_length: Option<u64>,
    /// Stored `Content-Disposition`, e.g. from [`content_disposition`].
    pub content_disposition: Option<String>,
    /// Stored `Cache-Control`.
    pub cache_control: Option<String>,
    /// User metadata, `x-amz-meta-{name}` (lowercase names).
    pub metadata: Vec<(String, String)>,
    /// Object tags (`x-amz-tagging`, as [`Tags::to_query_string`]).
    pub tagging: Option<Tags>,
    /// Server-side encryption.
    pub server_side_encryption: Option<ServerSideEncryption>,
}

impl Default for PutHeaders {
    /// Create-only, nothing else pinned.
    fn default() -> Self {
        Self {
            create_only: true,
            content_length: None,
            content_disposition: None,
            cache_control: None,
            metadata: Vec::new(),
            tagging: None,
            server_side_encryption: None,
        }
    }
}

impl PutHeaders {
    /// Whether `If-None-Match: *` is signed in (see [`PutHeaders`]).
    pub fn with_create_only(mut self, create_only: bool) -> Self {
        self.create_only = create_only;
        self
    }
    /// Pins the exact body size.
    pub fn with_content_length(mut self, bytes: u64) -> Self {
        self.content_length = Some(bytes);
        self
    }
    /// Sets the stored `Content-Disposition`.
    pub fn with_content_disposition(mut self, value: impl Into<String>) -> Self {
        self.content_disposition = Some(value.into());
        self
    }
    /// Sets the stored `Cache-Control`.
    pub fn with_cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }
    /// Adds `x-amz-meta-{name}`.
    pub fn with_metadata(mut self, name: &str, value: impl Into<String>) -> Self {
        self.metadata
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }
    /// Sets the object's tags.
    pub fn with_tagging(mut self, tags: Tags) -> Self {
        self.tagging = Some(tags);
        self
    }
    /// Asks for server-side encryption.
    pub fn with_server_side_encryption(mut self, sse: ServerSideEncryption) -> Self {
        self.server_side_encryption = Some(sse);
        self
    }

    /// The headers as `(lowercase name, value)` pairs, in a fixed order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(5 + self.metadata.len());
        if let Some(n) = self.content_length {
            out.push(("content-length".into(), n.to_string()));
        }
        if let Some(v) = &self.content_disposition {
            out.push(("content-disposition".into(), v.clone()));
        }
        if let Some(v) = &self.cache_control {
            out.push(("cache-control".into(), v.clone()));
        }
        if self.create_only {
            out.push(("if-none-match".into(), "*".into()));
        }
        for (n, v) in &self.metadata {
            let mut name = String::with_capacity(11 + n.len());
            name.push_str("x-amz-meta-");
            name.push_str(n);
            out.push((name, v.clone()));
        }
        if let Some(t) = &self.tagging
            && !t.is_empty()
        {
            out.push(("x-amz-tagging".into(), t.to_query_string()));
        }
        match &self.server_side_encryption {
            None => {}
            Some(ServerSideEncryption::Aes256) => {
                out.push(("x-amz-server-side-encryption".into(), "AES256".into()));
            }
            Some(ServerSideEncryption::AwsKms { key_id }) => {
                out.push(("x-amz-server-side-encryption".into(), "aws:kms".into()));
                if let Some(k) = key_id {
                    out.push((
                        "x-amz-server-side-encryption-aws-kms-key-id".into(),
                        k.clone(),
                    ));
                }
            }
        }
        out
    }
}

/// Headers a presigned UploadPart can pin. Each one set is signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartHeaders {
    /// The part's exact size in bytes (`Content-Length`): storage refuses a
    /// part of another size with 403 `SignatureDoesNotMatch`.
    pub content_length: Option<u64>,
    /// The part's checksum header (`x-amz-checksum-crc32c` or
    /// `x-amz-checksum-sha256`), when the client computed it before asking
    /// for the URL: S3 refuses unsigned `x-amz-*` headers on presigned
    /// requests.
    pub checksum: Option<PartChecksum>,
}

impl PartHeaders {
    /// Pins the part's exact size.
    pub fn with_content_length(mut self, bytes: u64) -> Self {
        self.content_length = Some(bytes);
        self
    }
    /// Pins the part's checksum header.
    pub fn with_checksum(mut self, checksum: PartChecksum) -> Self {
        self.checksum = Some(checksum);
        self
    }
    /// The headers as `(lowercase name, value)` pairs.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.content_length {
            out.push(("content-length".into(), n.to_string()));
        }
        if let Some(c) = &self.checksum {
            out.push((c.algorithm.header_name().to_owned(), c.value.clone()));
        }
        out
    }
}

/// RFC 8187 `attr-char`: what `filename*` may carry unencoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` disposition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `attachment`: browsers download instead of rendering (what private
    /// downloads of user content should use).
    Attachment,
    /// `inline`: browsers render when they can.
    Inline,
}

/// A `Content-Disposition` value per RFC 6266 for a client-supplied
/// `filename`: an ASCII `filename="..."` fallback and, when the name is not
/// plain ASCII, the exact name as `filename*=UTF-8''...` (RFC 8187).
///
/// The name is reduced to its last path segment (no `/` or `\`); control
/// characters (`Cc`), every format character (the whole Unicode `Cf`
/// category: bidirectional marks and overrides, which make
/// `"\u{202E}gpj.exe"` display as `exe.jpg`, zero-width spaces and joiners,
/// U+FEFF, U+061C, tag characters, ...) and the line and paragraph
/// separators U+2028 and U+2029 are dropped; the fallback replaces anything
/// outside printable ASCII, and `"` and `\`, with `_`; at most 200
/// characters are kept. An empty result becomes `download`. The file name never becomes
/// part of an object key.
///
/// ```
/// use upload_presign::headers::{Disposition, content_disposition};
/// assert_eq!(
///     content_disposition(Disposition::Attachment, "C:\\photos\\Été 2024 \"best\".jpg"),
///     "attachment; filename=\"_t_ 2024 _best_.jpg\"; filename*=UTF-8''%C3%89t%C3%A9%202024%20%22best%22.jpg"
/// );
/// assert_eq!(content_disposition(Disposition::Inline, "report.pdf"), "inline; filename=\"report.pdf\"");
/// ```
pub fn content_disposition(disposition: Disposition, filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or("");
    let kind = match disposition {
        Disposition::Attachment => "attachment",
        Disposition::Inline => "inline",
    };
    // Printable ASCII without quotes or backslashes is its own fallback
    // (the answer below, without the general path's copies).
    if base.len() <= 200
        && !base.trim().is_empty()
        && base
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        let mut out = String::with_capacity(kind.len() + base.len() + 13);
        out.push_str(kind);
        out.push_str("; filename=\"");
        out.push_str(base);
        out.push('"');
        return out;
    }
    content_disposition_of(kind, base)
}

/// [`content_disposition`] of any file name: invisible characters
/// dropped, an ASCII fallback and, when it differs, the UTF-8 name.
fn content_disposition_of(kind: &str, base: &str) -> String {
    let clean: String = base
        .chars()
        .filter(|&c| !is_invisible(c))
        .take(200)
        .collect();
    let clean = if clean.trim().is_empty() {
        "download".to_owned()
    } else {
        clean
    };
    let fallback: String = clean
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut out = format!("{kind}; filename=\"{fallback}\"");
    if fallback != clean {
        let _ = write!(
            out,
            "; filename*=UTF-8''{}",
            utf8_percent_encode(&clean, ATTR_CHAR)
        );
    }
    out
}

/// Characters a file name never shows: controls, format characters
/// (Unicode 16 `Cf`, from `unicode-general-category`) and the line and
/// paragraph separators.
fn is_invisible(c: char) -> bool {
    use unicode_general_category::{GeneralCategory, get_general_category};
    c.is_control()
        || matches!(
            get_general_category(c),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The printable-ASCII shortcut answers what the general path does.
        #[test]
        fn ascii_names_take_a_shortcut_to_the_same_header(name in "[ -~]{0,210}") {
            for (d, kind) in [(Disposition::Attachment, "attachment"), (Disposition::Inline, "inline")] {
                let base = name.rsplit(['/', '\\']).next().unwrap_or("");
                proptest::prop_assert_eq!(
                    content_disposition(d, &name),
                    content_disposition_of(kind, base)
                );
            }
        }
    }

    use super::*;

    #[test]
    fn dispositions_are_safe_for_hostile_names() {
        assert_eq!(
            content_disposition(Disposition::Attachment, ""),
            "attachment; filename=\"download\""
        );
        assert_eq!(
            content_disposition(Disposition::Attachment, "../../etc/"),
            "attachment; filename=\"download\""
        );
        assert_eq!(
            content_disposition(
                Disposition::Attachment,
                "a\r\nContent-Type: text/html\r\n.txt"
            ),
            "attachment; filename=\"html.txt\"",
            "CR/LF dropped, the last path segment kept"
        );
        let long = "x".repeat(500);
        assert_eq!(
            content_disposition(Disposition::Inline, &long).len(),
            "inline; filename=\"\"".len() + 200
        );
        let v = content_disposition(Disposition::Attachment, "😀.png");
        assert_eq!(
            v,
            "attachment; filename=\"_.png\"; filename*=UTF-8''%F0%9F%98%80.png"
        );
        assert!(v.is_ascii(), "header values stay ASCII");
        assert_eq!(
            content_disposition(Disposition::Attachment, "\u{202E}gpj.exe"),
            "attachment; filename=\"gpj.exe\"",
            "bidi overrides are dropped"
        );
    }

    #[test]
    fn every_format_character_and_separator_is_dropped() {
        // One of each kind: Arabic letter mark, zero-width space, BOM /
        // zero-width no-break space, line and paragraph separators, soft
        // hyphen, word joiner, invisible times, a tag character, an
        // Egyptian hieroglyph format control (Unicode 15), the Mongolian
        // vowel separator and a bidi isolate.
        let hostile = "a\u{061C}b\u{200B}c\u{FEFF}d\u{2028}e\u{2029}f\u{00AD}g\u{2060}h\u{2062}i\u{E0041}j\u{1343F}k\u{180E}l\u{2067}.pdf";
        assert_eq!(
            content_disposition(Disposition::Attachment, hostile),
            "attachment; filename=\"abcdefghijkl.pdf\""
        );
        // Only invisible characters: the name is empty, so `download`.
        assert_eq!(
            content_disposition(Disposition::Inline, "\u{200B}\u{FEFF}\u{2028}"),
            "inline; filename=\"download\""
        );
        // Visible non-ASCII letters and marks stay (combining acute, Arabic).
        assert_eq!(
            content_disposition(Disposition::Attachment, "e\u{0301}\u{0645}.txt"),
            "attachment; filename=\"e__.txt\"; filename*=UTF-8''e%CC%81%D9%85.txt"
        );
    }

    #[test]
    fn put_headers_become_signed_pairs() {
        let tags = Tags::from_pairs([("scan-status", "PENDING"), ("owner", "a b&c")]).unwrap();
        let h = PutHeaders::default()
            .with_content_length(42)
            .with_cache_control("no-store")
            .with_metadata("Owner-ID", "u1")
            .with_tagging(tags)
            .with_server_side_encryption(ServerSideEncryption::AwsKms {
                key_id: Some("alias/uploads".into()),
            });
        let pairs = h.to_pairs();
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("content-length"), Some("42"));
        assert_eq!(get("x-amz-meta-owner-id"), Some("u1"));
        assert_eq!(
            get("x-amz-tagging"),
            Some("owner=a%20b%26c&scan-status=PENDING")
        );
        assert_eq!(get("x-amz-server-side-encryption"), Some("aws:kms"));
        assert_eq!(
            get("x-amz-server-side-encryption-aws-kms-key-id"),
            Some("alias/uploads")
        );
        assert_eq!(get("if-none-match"), Some("*"), "create-only by default");
        assert_eq!(
            PutHeaders::default().to_pairs(),
            [("if-none-match".to_owned(), "*".to_owned())]
        );
        assert!(
            PutHeaders::default()
                .with_create_only(false)
                .to_pairs()
                .is_empty()
        );
    }
}
