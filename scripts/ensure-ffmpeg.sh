#!/usr/bin/env bash
# Video I/O (physics scenes, vrepa generate, datasets) needs an ffmpeg binary. Use one on PATH or $FFMPEG;
# otherwise install Debian's when we may (root + apt), else say how.
if [ -n "${FFMPEG:-}" ] || command -v ffmpeg >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[vrepa] installing ffmpeg (apt)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) && exit 0
fi
echo "[vrepa] no ffmpeg: install it (apt-get install ffmpeg), set FFMPEG=/path/to/ffmpeg, or add @ffmpeg-installer/ffmpeg; video steps will fail without it" >&2
exit 1
