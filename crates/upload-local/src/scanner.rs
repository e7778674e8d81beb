//! Which scanner the local mode runs: clamd when reachable, otherwise the
//! in-memory signature scanner, with a warning.

use std::sync::Arc;
use std::time::Duration;

use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner, MemoryScanner, Scanner};

/// The scanner the local mode chose at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerChoice {
    /// clamd answered `PING` and `VERSION` at start.
    Clamd {
        /// The address it was reached at.
        address: String,
        /// Its `VERSION` answer (engine and database version).
        version: String,
    },
    /// The in-memory scanner ([`MemoryScanner`]): knows only the EICAR
    /// test file and the project's test signature, so **nothing is really
    /// scanned**. Chosen when no clamd address was given or it did not
    /// answer.
    Memory {
        /// Why clamd is not used.
        reason: String,
    },
}

impl ScannerChoice {
    /// Whether real files are really scanned (clamd).
    pub fn is_real(&self) -> bool {
        matches!(self, Self::Clamd { .. })
    }
}

/// How long start-up waits for clamd's `PING` and `VERSION` answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// clamd at `address` when it answers `PING` with `PONG` and then
/// `VERSION` (within 5 s each); otherwise [`MemoryScanner`], with a
/// `tracing::warn!` that nothing is really scanned. Never fails: the
/// choice is returned beside the scanner.
pub async fn choose_scanner(address: Option<&str>) -> (Arc<dyn Scanner>, ScannerChoice) {
    let reason = match address {
        None => "no clamd address given".to_owned(),
        Some(a) => {
            let addr = if a.contains('/') && !a.contains(':') {
                ClamdAddress::Unix(a.into())
            } else {
                ClamdAddress::Tcp(a.to_owned())
            };
            let clamd =
                ClamdScanner::new(ClamdConfig::new(addr).with_connect_timeout(PROBE_TIMEOUT));
            let probe = async {
                clamd.ping().await?;
                clamd.version().await
            };
            match tokio::time::timeout(PROBE_TIMEOUT * 2, probe).await {
                Ok(Ok(version)) => {
                    tracing::info!(address = a, %version, "scanning with clamd");
                    return (
                        Arc::new(clamd),
                        ScannerChoice::Clamd {
                            address: a.to_owned(),
                            version,
                        },
                    );
                }
                Ok(Err(e)) => format!("clamd at {a} did not answer: {e}"),
                Err(_) => format!("clamd at {a} did not answer within {PROBE_TIMEOUT:?}"),
            }
        }
    };
    tracing::warn!(
        %reason,
        "NOTHING IS REALLY SCANNED: the in-memory scanner knows only the EICAR test file and the project's test signature; give --clamd HOST:PORT of a running clamd for real scans"
    );
    (
        Arc::new(MemoryScanner::new()),
        ScannerChoice::Memory { reason },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn falls_back_to_memory_when_clamd_is_absent() {
        let (_, c) = choose_scanner(None).await;
        assert_eq!(
            c,
            ScannerChoice::Memory {
                reason: "no clamd address given".into()
            }
        );
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (_, c) = choose_scanner(Some(&format!("127.0.0.1:{port}"))).await;
        assert!(!c.is_real());
        match c {
            ScannerChoice::Memory { reason } => {
                assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
