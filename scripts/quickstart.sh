#!/usr/bin/env bash
# The README's first command: the quickstart with every media type.
#
#   scripts/quickstart.sh --out DIR [FILE...]
#
# Installs what the media features need when missing (Debian, as root):
# libheif-dev and pkg-config (HEIC/AVIF, feature `heif`), poppler-utils
# (PDF first pages, `pdf`) and ffmpeg (video posters, `video`); then
# builds and runs the quickstart in release mode with feature `media`
# (about 6 minutes the first time on 2 cores). Without apt (not Debian, not
# root) it says what is missing and runs the quickstart without the
# features: HEIC, AVIF and JPEG XL are then rejected as unsupported (naming
# the feature), PDFs and videos kept without previews.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

features=(--features media)
missing=()
pkg-config --exists 'libheif >= 1.14' 2>/dev/null || missing+=(pkg-config libheif-dev)
command -v pdftoppm >/dev/null && command -v pdfinfo >/dev/null || missing+=(poppler-utils)
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt_install "${missing[@]}"
    else
        echo "quickstart: missing ${missing[*]} (Debian packages; run as root to install them)," >&2
        echo "quickstart: running without the media features" >&2
        features=()
    fi
fi
exec cargo run --release --locked -p upload-examples "${features[@]}" --bin quickstart -- "$@"
