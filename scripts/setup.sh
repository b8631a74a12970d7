#!/usr/bin/env bash
# Setup + main job (README): pinned pnpm, workspace install, build, the native TensorFlow backend where it
# can be built (wasm otherwise, said plainly), the conformance suite against the shared fixtures, the
# quickstart example, then the main job (`vrepa repro`, examples/repro).
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
if [ "$(pnpm --version 2>/dev/null || true)" != "12.4.2" ]; then
  echo "[vrepa] installing pnpm 12.4.2"
  npm i -g pnpm@12.4.2 --no-audit --no-fund
fi
pnpm install --frozen-lockfile
bash scripts/ensure-ffmpeg.sh
pnpm turbo run build
if pnpm run backend:install-native; then
  echo "[vrepa] native TensorFlow backend ready"
else
  echo "[vrepa] the native backend could not be built here: everything runs on the wasm backend (slower; see 'vrepa backend')"
fi
node packages/cli/dist/cli.js backend
FIXTURES="${VREPA_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
node packages/cli/dist/cli.js conformance "$FIXTURES"
pnpm --filter ./examples/quickstart start
# the main job: VideoREPA's claim at toy scale (vrepa repro --preset toy: ≤ 30 min on 2 idle cores; every
# stage cached, so a re-run resumes). VREPA_MAIN_JOB=smoke runs the < 3 min pipeline check instead.
pnpm --filter @vrepa/example-repro start -- --preset "${VREPA_MAIN_JOB:-toy}"
echo "[vrepa] main job report: examples/repro/work/${VREPA_MAIN_JOB:-toy}/report.md (and report.html)"
