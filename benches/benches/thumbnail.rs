//! Criterion bench `thumbnail`: a real 2560 × 1600 JPEG photo turned into a
//! 256-px WebP thumbnail.
//!
//! - `upload_pipeline`: [`StandardCodec`] (`decode` under
//!   `DecodeLimits::default()`, then `render` with `VariantSpec::thumb()`:
//!   `fast_image_resize` Lanczos3 and libwebp lossy quality 80).
//! - `image_crate`: the `image` crate alone (`load_from_memory`,
//!   `DynamicImage::resize(256, 256, Lanczos3)`, then
//!   `image::codecs::webp::WebPEncoder::new_lossless`, the only WebP
//!   encoder `image` 0.25 offers; its output is lossless and so larger).
//!
//! Run with `cargo bench -p upload-benches --bench thumbnail`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use upload_benches::{PHOTO, baseline_thumbnail, ours_thumbnail};
use upload_pipeline::StandardCodec;

fn thumbnail(c: &mut Criterion) {
    let photo = std::fs::read(PHOTO).expect("the sample photo");
    let codec = StandardCodec::default();

    let mut group = c.benchmark_group("thumbnail");
    // Each iteration takes tens of milliseconds: flat sampling (the same
    // iteration count per sample) keeps the run short on a 2-core machine
    // while still taking 20 samples.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Bytes(photo.len() as u64));
    group.bench_function("upload_pipeline", |b| {
        b.iter(|| ours_thumbnail(&codec, black_box(&photo)));
    });
    group.bench_function("image_crate", |b| {
        b.iter(|| baseline_thumbnail(black_box(&photo)));
    });
    group.finish();
}

criterion_group!(benches, thumbnail);
criterion_main!(benches);
