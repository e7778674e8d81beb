//! Virus scanning of uploads.
//!
//! - [`Scanner`]: scans a byte stream and returns a [`Verdict`].
//! - [`MemoryScanner`]: an in-process signature scanner that agrees with
//!   clamd on the project's test database (the EICAR test file as a
//!   whole-file signature, the [`test_marker`] anywhere), unpacks ZIP and
//!   gzip under clamd's limits ([`ScanLimits`]), with the same size limit
//!   and failure modes as clamd.
//! - [`ClamdScanner`]: a clamd client (`zINSTREAM`, `zPING`, `zVERSION`
//!   over TCP or a Unix socket), streaming the object in chunks.
//! - [`Quarantine`]: moves an infected or unscannable object out of the
//!   uploads location, in an order that never loses it; [`clean_tags`] marks a
//!   clean one, and [`deny_unscanned_reads_policy`] makes S3 refuse reads of
//!   anything not tagged clean.
//!
//! - [`ScannerVersion`]: the engine and signature database behind a
//!   verdict ([`Scanner::scanner_version`]), recorded with it so that
//!   objects judged clean with an older database can be scanned again.
//!
//! The policy is fail-closed: only [`Verdict::Clean`] lets an upload
//! proceed, and a scanner that is down is an [`Error::ScannerUnavailable`]
//! (retry later), never a verdict.

pub mod archive;
pub mod bucket_policy;
pub mod clamd;
pub mod error;
pub mod fixtures;
pub mod memory;
pub mod quarantine;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod verdict;
pub mod version;

pub use archive::ScanLimits;
pub use bucket_policy::{
    deny_unscanned_reads_policy, deny_unscanned_reads_statement, policy_document,
    require_create_only_statement,
};
pub use clamd::{ClamdAddress, ClamdConfig, ClamdScanner};
pub use error::{Error, Result};
pub use memory::{EICAR_SIGNATURE, MemoryScanner, TEST_MARKER_SIGNATURE, eicar, test_marker};
pub use quarantine::{
    Quarantine, QuarantinedObject, SCAN_DATABASE_TAG, SOURCE_ETAG_TAG, clean_tags, clean_tags_for,
};
pub use verdict::{ExceededLimit, Scanner, UnscannableReason, Verdict};
pub use version::ScannerVersion;
