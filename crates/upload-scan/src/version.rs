//! [`ScannerVersion`]: which engine and signature database produced a
//! verdict, so a verdict can be checked again when the database is newer.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest engine name accepted from a scanner: 128 bytes.
pub const MAX_ENGINE_LEN: usize = 128;
/// Longest database date accepted from a scanner: 64 bytes.
pub const MAX_DATABASE_DATE_LEN: usize = 64;

/// The engine and signature database a scanner runs, as clamd's `VERSION`
/// reply gives them: `ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025` is
/// engine `ClamAV 1.4.3`, database 27480 (the daily database's version
/// number, which grows with every update), database date
/// `Wed Dec  3 09:33:02 2025`. A daemon that loaded only local databases
/// answers the engine alone (`ClamAV 1.4.3`).
///
/// Recorded with every verdict (the pipeline's manifest and the clean
/// tags), so that objects judged clean with an older database can be
/// scanned again once the database is updated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScannerVersion {
    /// The engine and its version, e.g. `ClamAV 1.4.3` (printable ASCII, at
    /// most [`MAX_ENGINE_LEN`] bytes).
    pub engine: String,
    /// The signature database's version number, e.g. `27480`; `None` when
    /// the scanner does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<u64>,
    /// The database's build date as the scanner writes it, e.g.
    /// `Wed Dec  3 09:33:02 2025` (clamd: C `asctime` format, local time of
    /// the database build); `None` when the scanner does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_date: Option<String>,
}

impl ScannerVersion {
    /// An engine with the database version `database` and no date.
    ///
    /// # Errors
    /// [`Error::InvalidScannerVersion`] when `engine` is empty, longer than
    /// [`MAX_ENGINE_LEN`] bytes, contains `/` or anything but printable
    /// ASCII and spaces.
    pub fn new(engine: impl Into<String>, database: Option<u64>) -> Result<Self> {
        let engine = engine.into();
        check_engine(&engine, &engine)?;
        Ok(Self {
            engine,
            database,
            database_date: None,
        })
    }

    /// Sets the database date (printable ASCII and spaces, at most
    /// [`MAX_DATABASE_DATE_LEN`] bytes).
    ///
    /// # Errors
    /// [`Error::InvalidScannerVersion`] for any other date.
    pub fn with_database_date(mut self, date: impl Into<String>) -> Result<Self> {
        let date = date.into();
        check_date(&date, &date)?;
        self.database_date = Some(date);
        Ok(self)
    }

    /// Parses clamd's `VERSION` reply: `{engine}[/{database}[/{date}]]`,
    /// with or without the trailing NUL or newline, e.g.
    /// `ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025` or `ClamAV 1.4.3`.
    ///
    /// # Errors
    /// [`Error::InvalidScannerVersion`] for an empty reply, an engine or
    /// date that is not printable ASCII or too long, or a database part
    /// that is not a decimal number (a garbled or hostile reply never
    /// becomes a version that tags and manifests record).
    pub fn parse_clamd(reply: &str) -> Result<Self> {
        let line = reply.trim_end_matches(['\0', '\n', '\r']);
        let mut parts = line.splitn(3, '/');
        let engine = parts.next().unwrap_or_default();
        check_engine(engine, reply)?;
        let database = match parts.next() {
            None => None,
            Some(db) => {
                let valid =
                    !db.is_empty() && db.len() <= 20 && db.bytes().all(|b| b.is_ascii_digit());
                let n = valid.then(|| db.parse::<u64>().ok()).flatten();
                Some(n.ok_or_else(|| invalid(reply, "the database version is not a number"))?)
            }
        };
        let database_date = match parts.next() {
            None => None,
            Some(date) => {
                check_date(date, reply)?;
                Some(date.to_owned())
            }
        };
        Ok(Self {
            engine: engine.to_owned(),
            database,
            database_date,
        })
    }

    /// Whether this version's database is older than `database`: `true`
    /// when this one has no database number (it cannot be shown to be as
    /// new).
    pub fn database_older_than(&self, database: u64) -> bool {
        self.database.is_none_or(|d| d < database)
    }
}

impl std::fmt::Display for ScannerVersion {
    /// As clamd writes it: `ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.engine)?;
        if let Some(db) = self.database {
            write!(f, "/{db}")?;
            if let Some(date) = &self.database_date {
                write!(f, "/{date}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for ScannerVersion {
    type Err = Error;

    /// As [`ScannerVersion::parse_clamd`].
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_clamd(s)
    }
}

fn invalid(reply: &str, reason: &'static str) -> Error {
    Error::InvalidScannerVersion {
        reply: reply
            .chars()
            .take(200)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect(),
        reason,
    }
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

fn check_engine(engine: &str, reply: &str) -> Result<()> {
    if engine.trim().is_empty() {
        return Err(invalid(reply, "no engine name"));
    }
    if engine.len() > MAX_ENGINE_LEN {
        return Err(invalid(reply, "engine name longer than 128 bytes"));
    }
    if !printable(engine) || engine.contains('/') {
        return Err(invalid(reply, "engine name is not printable ASCII"));
    }
    Ok(())
}

fn check_date(date: &str, reply: &str) -> Result<()> {
    if date.trim().is_empty() {
        return Err(invalid(reply, "empty database date"));
    }
    if date.len() > MAX_DATABASE_DATE_LEN {
        return Err(invalid(reply, "database date longer than 64 bytes"));
    }
    if !printable(date) {
        return Err(invalid(reply, "database date is not printable ASCII"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clamd_replies() {
        let v =
            ScannerVersion::parse_clamd("ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025\0").unwrap();
        assert_eq!(v.engine, "ClamAV 1.4.3");
        assert_eq!(v.database, Some(27480));
        assert_eq!(v.database_date.as_deref(), Some("Wed Dec  3 09:33:02 2025"));
        assert_eq!(v.to_string(), "ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025");

        let local = ScannerVersion::parse_clamd("ClamAV 1.4.3\n").unwrap();
        assert_eq!(local, ScannerVersion::new("ClamAV 1.4.3", None).unwrap());
        assert_eq!(local.to_string(), "ClamAV 1.4.3");

        let no_date: ScannerVersion = "ClamAV 1.0.9/27000".parse().unwrap();
        assert_eq!(no_date.database, Some(27000));
        assert_eq!(no_date.database_date, None);
    }

    #[test]
    fn hostile_replies_are_typed_errors() {
        for (reply, why) in [
            ("", "no engine name"),
            ("\0", "no engine name"),
            ("   /27480", "no engine name"),
            ("/27480/Wed", "no engine name"),
            ("ClamAV 1.4.3/", "the database version is not a number"),
            (
                "ClamAV 1.4.3/abc/Wed",
                "the database version is not a number",
            ),
            (
                "ClamAV 1.4.3/-1/Wed",
                "the database version is not a number",
            ),
            (
                "ClamAV 1.4.3/+5/Wed",
                "the database version is not a number",
            ),
            (
                "ClamAV 1.4.3/99999999999999999999999/Wed",
                "the database version is not a number",
            ),
            ("ClamAV 1.4.3/27480/", "empty database date"),
            ("ClamAV\x001.4/27480", "engine name is not printable ASCII"),
            ("ClamAV \u{e9}/27480", "engine name is not printable ASCII"),
            ("ClamAV\t1.4", "engine name is not printable ASCII"),
            (
                "ClamAV 1.4/1/Wed\nDec",
                "database date is not printable ASCII",
            ),
            (
                "ClamAV 1.4/1/Wed\0Dec",
                "database date is not printable ASCII",
            ),
        ] {
            match ScannerVersion::parse_clamd(reply) {
                Err(Error::InvalidScannerVersion { reason, .. }) => {
                    assert_eq!(reason, why, "{reply:?}")
                }
                other => panic!("{reply:?}: {other:?}"),
            }
        }
        let long = format!("ClamAV {}", "9".repeat(200));
        assert!(matches!(
            ScannerVersion::parse_clamd(&long),
            Err(Error::InvalidScannerVersion {
                reason: "engine name longer than 128 bytes",
                ..
            })
        ));
        let long_date = format!("ClamAV 1.4/1/{}", "x".repeat(65));
        assert!(matches!(
            ScannerVersion::parse_clamd(&long_date),
            Err(Error::InvalidScannerVersion {
                reason: "database date longer than 64 bytes",
                ..
            })
        ));
        // The error never carries control characters of the reply.
        let Err(e) = ScannerVersion::parse_clamd("\x1b[31m/x") else {
            panic!("accepted")
        };
        assert!(!e.to_string().contains('\x1b'), "{e}");
        assert!(!e.is_transient());
    }

    #[test]
    fn database_order() {
        let v = ScannerVersion::new("ClamAV 1.4.3", Some(27480)).unwrap();
        assert!(v.database_older_than(27481));
        assert!(!v.database_older_than(27480));
        assert!(!v.database_older_than(1));
        let unknown = ScannerVersion::new("ClamAV 1.4.3", None).unwrap();
        assert!(unknown.database_older_than(0));
        assert!(ScannerVersion::new("a/b", None).is_err());
        assert!(v.clone().with_database_date("\n").is_err());
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"engine":"ClamAV 1.4.3","database":27480}"#);
        assert_eq!(serde_json::from_str::<ScannerVersion>(&json).unwrap(), v);
    }
}
