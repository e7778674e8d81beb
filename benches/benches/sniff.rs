//! Criterion bench `sniff`: the cost of learning an upload's real type from
//! its bytes.
//!
//! `upload_core_sniff/*` runs [`upload_core::sniff`] on the first 8 KiB
//! ([`upload_core::SNIFF_LEN`]) of real files from `samples/` (JPEG, PNG,
//! WebP, GIF, PDF) and of a plain-text file (`samples/README.md`, which
//! matches no signature, so every signature is tried: the worst case).
//!
//! What it is compared with, honestly: `sniff` *is* `infer::get` plus a
//! struct copy, so benchmarking `infer::get` directly would only measure
//! the same code twice. The comparison is instead with what a careless
//! service does: trust the client's file name, i.e. `mime_guess` on the
//! declared extension (`mime_guess_extension/*`). That is not a baseline
//! for correctness (it never looks at the bytes, so a renamed executable
//! passes as `photo.jpg`); it is here to show that looking at the bytes
//! costs about as much as looking at the name: well under a microsecond
//! per upload, next to milliseconds of network and storage. (Inputs that
//! match late in `infer`'s table, like PDF, or not at all, like text, are
//! the slowest for `sniff`.)
//!
//! Run with `cargo bench -p upload-benches --bench sniff`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use upload_benches::read_sample;
use upload_core::{SNIFF_LEN, sniff};

/// (label, file under `samples/`, the name a client would declare).
const INPUTS: [(&str, &str, &str); 6] = [
    (
        "jpeg",
        "photos/photo_colorfulcups_2560x1600_gps.jpg",
        "cups.jpg",
    ),
    ("png", "photos/transparent.png", "transparent.png"),
    ("webp", "testdata/libwebp_test.webp", "test.webp"),
    ("gif", "testdata/fire.gif", "fire.gif"),
    ("pdf", "photos/exiftool_PDF.pdf", "document.pdf"),
    ("text", "README.md", "notes.txt"),
];

fn sniff_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sniff");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (label, path, declared_name) in INPUTS {
        let mut head = read_sample(path);
        head.truncate(SNIFF_LEN);
        // Check the inputs are what the labels say before timing them.
        let found = sniff(&head).map(|s| s.extension);
        match label {
            "text" => assert_eq!(found, Err(upload_core::Unrecognized::Unknown), "{path}"),
            _ => assert!(found.is_ok(), "{path} not recognised"),
        }
        group.bench_with_input(
            BenchmarkId::new("upload_core_sniff", label),
            &head,
            |b, head| b.iter(|| sniff(black_box(head))),
        );
        group.bench_with_input(
            BenchmarkId::new("mime_guess_extension", label),
            &declared_name,
            |b, name| b.iter(|| mime_guess::from_path(black_box(name)).first_raw()),
        );
    }
    group.finish();
}

criterion_group!(benches, sniff_bench);
criterion_main!(benches);
