#!/usr/bin/env bash
# Setup + main job (README): pinned pnpm, workspace install, build, the native TensorFlow backend where it
# can be built (wasm otherwise, said plainly), then the conformance suite against the shared fixtures and
# the quickstart example.
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
# the main job: VideoREPA finetuning end to end on a tiny model (scenes → caches → train → kill/resume → video)
pnpm --filter @vrepa/example-train-tiny start
