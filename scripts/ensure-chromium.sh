#!/usr/bin/env bash
# The relations viewer's browser test drives a real chromium (playwright-core, no browser download). Use one
# on PATH or $CHROMIUM_PATH; otherwise install Debian's when we may (root + apt), else say the test will skip.
for c in "${CHROMIUM_PATH:-}" chromium chromium-browser google-chrome; do
  if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[vrepa] installing chromium (apt) for the relations viewer's browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) && exit 0
fi
echo "[vrepa] no chromium (apt-get install chromium, or set CHROMIUM_PATH): the relations viewer's browser test will print SKIPPED" >&2
exit 1
