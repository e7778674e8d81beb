//! Video posters (feature `video`): real MP4 and WebM clips through the
//! worker on in-memory parts with `VideoProcessor` (Debian's ffmpeg), and
//! truncated, hostile and oversized ones refused. Samples:
//! `samples/media` (how they were made in `samples/MANIFEST.tsv`, CC0).

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::sync::Arc;

use common::{World, sample, world_with};
use upload_core::{Bytes, Storage, UploadPolicy};
use upload_pipeline::media::{
    MediaInput, MediaProcessor, MediaRejection, VideoLimits, VideoProcessor,
};
use upload_pipeline::{
    Error, Manifest, MediaInfo, Outcome, StandardCodec, VariantSpec, WorkerConfig,
};
use upload_scan::MemoryScanner;

const MP4: &str = "media/generated_testsrc_320x240_2s_h264_aac.mp4";
const WEBM: &str = "media/generated_testsrc2_256x144_2s_vp9_opus.webm";

fn video_processor() -> VideoProcessor {
    VideoProcessor::new(Arc::new(StandardCodec::default()))
}

fn video_world(processor: VideoProcessor) -> World {
    let policy = UploadPolicy::new(
        [
            "image/jpeg",
            "image/png",
            "video/mp4",
            "video/webm",
            "video/quicktime",
        ],
        64 << 20,
    )
    .unwrap();
    let config = WorkerConfig::new(policy).with_processor(Arc::new(processor));
    world_with(Arc::new(MemoryScanner::new()), config)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn run_one(w: &World, key: &str, body: Bytes, ct: &str) -> Manifest {
    let k = w.upload(key, body, ct).await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.failed), (1, 0), "{stats:?}");
    w.manifest(&k).await
}

/// Checks the variants of `m` are stored WebP posters of `dims`, without
/// metadata, not a flat colour (a real frame of the test pattern).
async fn check_posters(w: &World, m: &Manifest, dims: &[(&str, u32, u32)]) {
    let got: Vec<_> = m
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    assert_eq!(got, dims);
    for (v, spec) in m.variants.iter().zip(VariantSpec::defaults()) {
        assert_eq!(
            v.key.as_str(),
            format!(
                "{}/{}-{}-{}.webp",
                m.source.key,
                v.name,
                &m.source.etag[..16],
                spec.fingerprint()
            )
        );
        let body = w.processed.get(&v.key).await.unwrap().body;
        assert!(
            !contains(&body, b"EXIF") && !contains(&body, b"XMP ") && !contains(&body, b"ICCP"),
            "no metadata in {}",
            v.key
        );
        let img = image::load_from_memory(&body).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (v.width, v.height));
        let mut colours: Vec<_> = img.pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() > 100,
            "a real frame, got {} colours",
            colours.len()
        );
    }
}

#[tokio::test]
async fn mp4_gets_a_poster_duration_dimensions_and_codecs() {
    let w = video_world(video_processor());
    let m = run_one(&w, "uploads/u/clip.mp4", sample(MP4), "video/mp4").await;
    assert_eq!(m.verdict, Outcome::Clean, "{:?}", m.reason);
    assert_eq!(m.source.sniffed.as_deref(), Some("video/mp4"));
    let Some(MediaInfo::Video(v)) = &m.media else {
        panic!("no video info: {:?}", m.media);
    };
    assert_eq!(v.duration_ms, 2000);
    assert_eq!((v.width, v.height), (320, 240));
    assert_eq!(v.video_codec, "h264");
    assert_eq!(v.audio_codec.as_deref(), Some("aac"));
    assert!(v.placeholder.is_some());
    // Never enlarged: the medium poster is the frame's own size.
    check_posters(&w, &m, &[("thumb", 256, 192), ("medium", 320, 240)]).await;
    assert_eq!(
        w.uploads
            .get_tags(&m.source.key)
            .await
            .unwrap()
            .get("scan-status"),
        Some("CLEAN")
    );
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["media"]["kind"], "video");
    assert_eq!(json["media"]["duration_ms"], 2000);
}

#[tokio::test]
async fn webm_gets_a_poster_duration_dimensions_and_codecs() {
    let w = video_world(video_processor());
    let m = run_one(&w, "uploads/u/clip.webm", sample(WEBM), "video/webm").await;
    assert_eq!(m.verdict, Outcome::Clean, "{:?}", m.reason);
    let Some(MediaInfo::Video(v)) = &m.media else {
        panic!("no video info: {:?}", m.media);
    };
    assert_eq!(v.duration_ms, 2008);
    assert_eq!((v.width, v.height), (256, 144));
    assert_eq!(v.video_codec, "vp9");
    assert_eq!(v.audio_codec.as_deref(), Some("opus"));
    check_posters(&w, &m, &[("thumb", 256, 144), ("medium", 256, 144)]).await;
}

#[tokio::test]
async fn truncated_mp4_is_rejected_as_broken() {
    let w = video_world(video_processor());
    let clip = sample(MP4);
    let m = run_one(
        &w,
        "uploads/u/cut.mp4",
        clip.slice(..clip.len() / 2),
        "video/mp4",
    )
    .await;
    assert_eq!(m.verdict, Outcome::Rejected);
    let reason = m.reason.unwrap();
    assert!(
        reason.starts_with("broken or truncated file: ffprobe: ")
            && reason.contains("moov atom not found"),
        "{reason}"
    );
    assert!(m.variants.is_empty() && m.media.is_none());
    let tags = w.uploads.get_tags(&m.source.key).await.unwrap();
    assert_eq!(tags.get("scan-status"), None, "never tagged CLEAN");
}

#[tokio::test]
async fn video_above_the_resolution_limit_is_rejected() {
    let w = video_world(video_processor().with_limits(VideoLimits::default().with_max_side(300)));
    let m = run_one(&w, "uploads/u/big.mp4", sample(MP4), "video/mp4").await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(
        m.reason.as_deref(),
        Some("a resolution of 320x240 is above the 300 px a side allowed")
    );
    assert!(m.variants.is_empty());
}

#[tokio::test]
async fn video_above_the_duration_limit_is_rejected() {
    let limits = VideoLimits::default().with_max_duration(std::time::Duration::from_secs(1));
    let w = video_world(video_processor().with_limits(limits));
    let m = run_one(&w, "uploads/u/long.webm", sample(WEBM), "video/webm").await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(
        m.reason.as_deref(),
        Some("a duration of 2008 ms is longer than the 1000 ms allowed")
    );
}

/// A listener on a free local port, and whether anything connected to it.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn nobody_connected(l: &TcpListener) -> bool {
    matches!(l.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[tokio::test]
async fn playlist_renamed_mp4_is_rejected_without_fetching() {
    let (l, port) = listener();
    let hls = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n"
    );
    // Through the worker: the bytes are text, not an MP4.
    let w = video_world(video_processor());
    let m = run_one(
        &w,
        "uploads/u/hls.mp4",
        Bytes::from(hls.clone()),
        "video/mp4",
    )
    .await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert!(m.variants.is_empty() && m.media.is_none());
    // And handed to the processor as if it were one: refused, nothing
    // fetched (the demuxer is forced to MP4, the protocols to file and pipe).
    let concat = format!("ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/y.mp4'\n");
    let concat_proto =
        format!("concat:http://127.0.0.1:{port}/a.mp4|http://127.0.0.1:{port}/b.mp4");
    for (body, ct) in [
        (hls.clone(), "video/mp4"),
        (hls, "video/webm"),
        (concat, "video/quicktime"),
        (concat_proto, "video/mp4"),
    ] {
        match video_processor().process(MediaInput::new(
            Bytes::from(body),
            ct,
            VariantSpec::defaults(),
        )) {
            Err(Error::MediaRejected {
                reason: MediaRejection::Corrupt { detail },
                ..
            }) => assert!(detail.starts_with("ffprobe: "), "{detail}"),
            other => panic!("{ct}: {other:?}"),
        }
    }
    assert!(nobody_connected(&l), "a URL was fetched");
}

#[tokio::test]
async fn missing_ffmpeg_is_an_unsupported_rejection_naming_the_package() {
    let w =
        video_world(video_processor().with_tools("/nonexistent/ffprobe", "/nonexistent/ffmpeg"));
    let m = run_one(&w, "uploads/u/clip.mp4", sample(MP4), "video/mp4").await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(
        m.reason.as_deref(),
        Some(
            "video/mp4 is not supported here: /nonexistent/ffprobe is not installed (apt install ffmpeg)"
        )
    );
}

#[test]
fn audio_only_file_is_refused_as_having_no_video() {
    // The WebM's audio stream alone, remuxed by ffmpeg itself.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.webm");
    let out = dir.path().join("audio.webm");
    std::fs::write(&src, sample(WEBM)).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&src)
        .args(["-vn", "-c:a", "copy"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let audio = Bytes::from(std::fs::read(&out).unwrap());
    match video_processor().process(MediaInput::new(
        audio,
        "video/webm",
        VariantSpec::defaults(),
    )) {
        Err(Error::MediaRejected {
            reason: MediaRejection::NoVideoStream,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}
