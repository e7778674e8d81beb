//! The [`Scanner`] conformance suite (feature `testkit`).
//!
//! Every scanner, in-memory or clamd, must pass [`run_all`]. The checks need
//! the scanner to detect the EICAR test file, as every ClamAV database does.

use bytes::Bytes;
use futures::StreamExt;
use upload_core::ByteStream;

use crate::memory::eicar;
use crate::verdict::{Scanner, Verdict};

fn stream_of(data: Bytes, chunk: usize) -> ByteStream {
    let parts: Vec<_> = (0..data.len())
        .step_by(chunk.max(1))
        .map(|s| Ok(data.slice(s..(s + chunk).min(data.len()))))
        .collect();
    futures::stream::iter(parts).boxed()
}

/// Runs every check below.
pub async fn run_all(s: &dyn Scanner) {
    clean_content(s).await;
    detects_eicar(s).await;
    detects_eicar_across_chunks(s).await;
}

/// Ordinary bytes, and an empty stream, are clean.
pub async fn clean_content(s: &dyn Scanner) {
    let text = Bytes::from_static(b"just a harmless text file\n");
    assert_eq!(
        s.scan(stream_of(text, 7)).await.expect("scan text"),
        Verdict::Clean
    );
    assert_eq!(
        s.scan(stream_of(Bytes::new(), 1))
            .await
            .expect("scan empty"),
        Verdict::Clean,
        "an empty stream is clean"
    );
    let big: Bytes = (0..1_000_000u32)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    assert_eq!(
        s.scan(stream_of(big, 65_536)).await.expect("scan 1 MB"),
        Verdict::Clean
    );
}

/// The EICAR file alone is infected, with a non-empty signature name that
/// mentions EICAR.
pub async fn detects_eicar(s: &dyn Scanner) {
    match s.scan(stream_of(eicar(), 4096)).await.expect("scan eicar") {
        Verdict::Infected { signature } => {
            assert!(
                signature.to_ascii_uppercase().contains("EICAR"),
                "{signature}"
            );
        }
        other => panic!("EICAR not detected: {other:?}"),
    }
}

/// The EICAR file split into 1-byte and 5-byte chunks is still found.
pub async fn detects_eicar_across_chunks(s: &dyn Scanner) {
    for chunk in [1, 5] {
        let v = s
            .scan(stream_of(eicar(), chunk))
            .await
            .expect("scan split eicar");
        assert!(
            matches!(v, Verdict::Infected { .. }),
            "chunk {chunk}: {v:?}"
        );
    }
}
