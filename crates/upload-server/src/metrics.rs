//! The upload API's metrics, through the [`metrics`] facade (no-ops until
//! the application installs a recorder, e.g. `upload-pipeline`'s
//! `service::install_prometheus` with its feature `prometheus`):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `upload_api_presigned_urls_total` | counter | `route` (the upload route's name), `kind` = `put`, `post`, `part` | presigned URLs and POST forms handed to clients, one per URL (a multipart session's first batch counts each part URL) |
//! | `upload_api_multipart_sessions_total` | counter | `route` | multipart uploads created for clients |

/// Presigned URLs issued, by `route` and `kind` (counter).
pub const PRESIGNED_URLS: &str = "upload_api_presigned_urls_total";
/// Multipart uploads created, by `route` (counter).
pub const MULTIPART_SESSIONS: &str = "upload_api_multipart_sessions_total";

/// What a presigned URL lets its holder do (the `kind` label of
/// [`PRESIGNED_URLS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlKind {
    /// A single PUT of the whole object.
    Put,
    /// A browser POST form.
    Post,
    /// The PUT of one part of a multipart upload.
    Part,
}

impl UrlKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlKind::Put => "put",
            UrlKind::Post => "post",
            UrlKind::Part => "part",
        }
    }
}

/// Counts `n` URLs of `kind` issued for `route`.
pub(crate) fn issued(route: &str, kind: UrlKind, n: usize) {
    ::metrics::counter!(PRESIGNED_URLS, "route" => route.to_owned(), "kind" => kind.as_str())
        .increment(n as u64);
}

/// Counts a multipart upload created for `route`.
pub(crate) fn session_created(route: &str) {
    ::metrics::counter!(MULTIPART_SESSIONS, "route" => route.to_owned()).increment(1);
}

/// Registers the descriptions (`# HELP` lines) of the API's metrics with
/// the installed recorder. Optional.
pub fn describe() {
    ::metrics::describe_counter!(
        PRESIGNED_URLS,
        "Presigned URLs and POST forms issued, by route and kind."
    );
    ::metrics::describe_counter!(
        MULTIPART_SESSIONS,
        "Multipart uploads created for clients, by route."
    );
}
