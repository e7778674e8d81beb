//! [`VideoProcessor`]: a poster frame of an MP4, MOV or WebM, with its
//! duration, dimensions and codecs, by Debian's ffmpeg (`ffprobe`,
//! `ffmpeg`) run as child processes.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::tool::{self, RunLimits};
use super::{MediaInput, MediaProcessor, MediaRejection, Processed, render_poster};
use crate::codec::{DecodeLimits, ImageCodec};
use crate::error::{Error, Result};
use crate::manifest::{MediaInfo, VideoInfo};

/// What ffmpeg's absence is fixed by.
const INSTALL: &str = "apt install ffmpeg";

/// The limits of [`VideoProcessor`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VideoLimits {
    /// Largest video processed, in bytes (default 1 GiB).
    pub max_bytes: u64,
    /// Longest duration (default 4 h).
    pub max_duration: Duration,
    /// Largest side of the first video stream's frames, in pixels
    /// (default 7680, 8K UHD).
    pub max_side: u32,
    /// Most streams in the container (default 16).
    pub max_streams: u64,
    /// Wall-clock limit of each tool run; a run past it is killed and the
    /// video refused (default 30 s).
    pub timeout: Duration,
    /// Address-space limit (`RLIMIT_AS`) of each tool run, in bytes
    /// (default 2 GiB).
    pub memory: u64,
}

impl Default for VideoLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_duration: Duration::from_secs(4 * 3600),
            max_side: 7680,
            max_streams: 16,
            timeout: Duration::from_secs(30),
            memory: 2 << 30,
        }
    }
}

impl VideoLimits {
    /// Sets the largest side of the frames, in pixels.
    pub fn with_max_side(mut self, pixels: u32) -> Self {
        self.max_side = pixels;
        self
    }

    /// Sets the longest duration.
    pub fn with_max_duration(mut self, duration: Duration) -> Self {
        self.max_duration = duration;
        self
    }

    /// Sets the wall-clock limit of each tool run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the most streams.
    pub fn with_max_streams(mut self, streams: u64) -> Self {
        self.max_streams = streams;
        self
    }
}

/// The processor of `video/mp4`, `video/quicktime` and `video/webm`
/// uploads (feature `video`): `ffprobe` reads the duration, dimensions,
/// codecs and stream count (refused above [`VideoLimits`]); `ffmpeg`
/// extracts one frame, at min(1 s, duration / 2), as PNG; it goes through
/// the [`ImageCodec`] into each variant (the same specs and encoders as
/// images: a poster, no metadata); the manifest gets
/// [`MediaInfo::Video`].
///
/// Hostile input: the demuxer is forced from the sniffed type (`mov` or
/// `matroska`), so a playlist or a `concat` list renamed `.mp4` is never
/// read as one; the protocol whitelist is `file,pipe` (no URL is ever
/// fetched, external data references stay off); each tool runs on a
/// private temporary copy (mode 0600, deleted after), with `-nostdin`, an
/// empty environment, an address-space limit, no core dumps and no file
/// writes, killed past its time limit. A broken or truncated file, or one
/// over a limit, is refused ([`Error::MediaRejected`]).
///
/// When `ffprobe` or `ffmpeg` is not installed, a video is refused as
/// unsupported naming `apt install ffmpeg` ([`Error::MediaUnsupported`]).
///
/// Not registered by default: add it with
/// [`WorkerConfig::with_processor`](crate::WorkerConfig::with_processor).
#[derive(Debug, Clone)]
pub struct VideoProcessor {
    codec: Arc<dyn ImageCodec>,
    limits: VideoLimits,
    decode_limits: DecodeLimits,
    ffprobe: Option<PathBuf>,
    ffmpeg: Option<PathBuf>,
}

/// ffprobe's JSON (`-show_format -show_streams`), the fields read.
#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Format {
    nb_streams: Option<u64>,
    duration: Option<String>,
}

/// ffmpeg's demuxer for a sniffed type.
fn demuxer(content_type: &str) -> Option<&'static str> {
    match content_type {
        "video/mp4" | "video/quicktime" => Some("mov"),
        "video/webm" => Some("matroska"),
        _ => None,
    }
}

impl VideoProcessor {
    /// Renders posters through `codec`, under the default
    /// [`VideoLimits`], with `ffprobe` and `ffmpeg` found on `PATH`.
    pub fn new(codec: Arc<dyn ImageCodec>) -> Self {
        Self {
            codec,
            limits: VideoLimits::default(),
            decode_limits: DecodeLimits::default(),
            ffprobe: None,
            ffmpeg: None,
        }
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: VideoLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs these programs instead of `ffprobe` and `ffmpeg` from `PATH`.
    pub fn with_tools(mut self, ffprobe: impl Into<PathBuf>, ffmpeg: impl Into<PathBuf>) -> Self {
        self.ffprobe = Some(ffprobe.into());
        self.ffmpeg = Some(ffmpeg.into());
        self
    }

    fn run(
        &self,
        program: &Option<PathBuf>,
        name: &'static str,
        args: &[&OsStr],
        max_stdout: usize,
        content_type: &str,
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
            content_type,
            INSTALL,
        )
    }
}

impl MediaProcessor for VideoProcessor {
    fn name(&self) -> &'static str {
        "video"
    }

    /// `video/mp4`, `video/quicktime` and `video/webm`.
    fn handles(&self, content_type: &str) -> bool {
        demuxer(content_type).is_some()
    }

    fn process(&self, input: MediaInput) -> Result<Processed> {
        let MediaInput {
            body,
            content_type,
            variants,
        } = input;
        let ct = content_type.as_str();
        let rejected = |reason| Error::MediaRejected {
            content_type: content_type.clone(),
            reason,
        };
        let Some(format) = demuxer(ct) else {
            return Err(Error::UnsupportedImage {
                format: content_type.clone(),
            });
        };
        if body.len() as u64 > self.limits.max_bytes {
            return Err(rejected(MediaRejection::TooLarge {
                bytes: body.len() as u64,
                max: self.limits.max_bytes,
            }));
        }
        let file = tool::private_copy(&body, ".video")?;
        drop(body);
        let path = file.path().as_os_str();
        let common: [&OsStr; 6] = [
            "-v".as_ref(),
            "error".as_ref(),
            "-protocol_whitelist".as_ref(),
            "file,pipe".as_ref(),
            "-f".as_ref(),
            format.as_ref(),
        ];
        let mut args: Vec<&OsStr> = common.to_vec();
        args.extend::<[&OsStr; 6]>([
            "-print_format".as_ref(),
            "json".as_ref(),
            "-show_format".as_ref(),
            "-show_streams".as_ref(),
            "-i".as_ref(),
            path,
        ]);
        let ran = tracing::info_span!("ffprobe")
            .in_scope(|| self.run(&self.ffprobe, "ffprobe", &args, 4 << 20, ct))?;
        if !ran.status.success() {
            return Err(rejected(MediaRejection::Corrupt {
                detail: ran.error_detail("ffprobe"),
            }));
        }
        let probe: Probe = serde_json::from_slice(&ran.stdout).map_err(|e| {
            rejected(MediaRejection::Corrupt {
                detail: format!("ffprobe's answer: {e}"),
            })
        })?;
        let streams = probe
            .format
            .as_ref()
            .and_then(|f| f.nb_streams)
            .unwrap_or(probe.streams.len() as u64)
            .max(probe.streams.len() as u64);
        if streams > self.limits.max_streams {
            return Err(rejected(MediaRejection::TooManyStreams {
                streams,
                max: self.limits.max_streams,
            }));
        }
        let kind = |k: &str| {
            probe
                .streams
                .iter()
                .find(move |s| s.codec_type.as_deref() == Some(k))
        };
        let Some(video) = kind("video") else {
            return Err(rejected(MediaRejection::NoVideoStream));
        };
        let (Some(width), Some(height)) = (video.width, video.height) else {
            return Err(rejected(MediaRejection::Corrupt {
                detail: "the video stream has no dimensions".to_owned(),
            }));
        };
        if width == 0 || height == 0 {
            return Err(rejected(MediaRejection::Corrupt {
                detail: format!("a video stream of {width}x{height}"),
            }));
        }
        if width.max(height) > self.limits.max_side {
            return Err(rejected(MediaRejection::ResolutionTooHigh {
                width,
                height,
                max_side: self.limits.max_side,
            }));
        }
        let duration = probe
            .format
            .as_ref()
            .and_then(|f| f.duration.as_deref())
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0);
        let Some(duration) = duration else {
            return Err(rejected(MediaRejection::Corrupt {
                detail: "no duration".to_owned(),
            }));
        };
        let duration_ms = (duration * 1000.0).round() as u64;
        let max_ms = self.limits.max_duration.as_millis() as u64;
        if duration_ms > max_ms {
            return Err(rejected(MediaRejection::TooLong {
                duration_ms,
                max_ms,
            }));
        }
        let mut info = VideoInfo::new(
            duration_ms,
            width,
            height,
            video.codec_name.clone().unwrap_or_default(),
        );
        info.audio_codec = kind("audio").and_then(|a| a.codec_name.clone());
        if variants.is_empty() {
            return Ok(Processed {
                media: Some(MediaInfo::Video(info)),
                ..Processed::default()
            });
        }
        // One frame at min(1 s, duration / 2), upright (ffmpeg applies the
        // display matrix), as one PNG on stdout; no audio, subtitles, data
        // or metadata.
        let at = format!("{:.3}", (duration / 2.0).min(1.0));
        let mut args: Vec<&OsStr> = vec!["-nostdin".as_ref(), "-hide_banner".as_ref()];
        args.extend(common);
        args.extend::<[&OsStr; 21]>([
            "-threads".as_ref(),
            "2".as_ref(),
            "-ss".as_ref(),
            at.as_ref(),
            "-i".as_ref(),
            path,
            "-map".as_ref(),
            "0:v:0".as_ref(),
            "-frames:v".as_ref(),
            "1".as_ref(),
            "-an".as_ref(),
            "-sn".as_ref(),
            "-dn".as_ref(),
            "-map_metadata".as_ref(),
            "-1".as_ref(),
            "-c:v".as_ref(),
            "png".as_ref(),
            "-f".as_ref(),
            "image2pipe".as_ref(),
            "-y".as_ref(),
            "pipe:1".as_ref(),
        ]);
        // An RGBA PNG of the largest frame allowed, uncompressed.
        let side = self.limits.max_side as usize;
        let max_png = side * side * 4 + (1 << 20);
        let ran = tracing::info_span!("ffmpeg", at = %at)
            .in_scope(|| self.run(&self.ffmpeg, "ffmpeg", &args, max_png, ct))?;
        drop(file);
        if !ran.status.success() || ran.stdout.is_empty() {
            return Err(rejected(MediaRejection::Corrupt {
                detail: if ran.stdout.is_empty() && ran.status.success() {
                    "no frame could be decoded".to_owned()
                } else {
                    ran.error_detail("ffmpeg")
                },
            }));
        }
        let ((width, height), variants, placeholder) = render_poster(
            self.codec.as_ref(),
            &ran.stdout,
            &self.decode_limits,
            &variants,
            "the poster frame",
            rejected,
        )?;
        // The size as displayed: the poster is upright.
        info.width = width;
        info.height = height;
        info.placeholder = placeholder;
        Ok(Processed {
            variants,
            image: None,
            media: Some(MediaInfo::Video(info)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_json_is_read() {
        let json = br#"{"streams":[{"index":0,"codec_name":"vp9","codec_type":"video","width":256,"height":144},
            {"index":1,"codec_name":"opus","codec_type":"audio"}],
            "format":{"nb_streams":2,"format_name":"matroska,webm","duration":"2.008000"}}"#;
        let p: Probe = serde_json::from_slice(json).unwrap();
        assert_eq!(p.streams.len(), 2);
        assert_eq!(p.streams[0].width, Some(256));
        assert_eq!(p.format.unwrap().duration.as_deref(), Some("2.008000"));
        assert_eq!(demuxer("video/webm"), Some("matroska"));
        assert_eq!(demuxer("video/quicktime"), Some("mov"));
        assert_eq!(demuxer("video/x-msvideo"), None);
    }
}
