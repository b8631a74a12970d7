#!/usr/bin/env bash
# The test command (README): build, the native backend where it can be built, typecheck, consumer-side
# package checks, unit/property tests, the pack-and-install test (browser bundles included), the relations
# viewer in a real chromium (skipped with a message when there is none), and the conformance suite on every
# available backend.
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
FIXTURES="${VREPA_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
export VREPA_FIXTURES="$FIXTURES"
# the pre-training reference set (videomae_pretrain) lives next to the main one
FIXTURES_PRETRAIN="${VREPA_FIXTURES_PRETRAIN:-$(dirname "$FIXTURES")/fixtures-pretrain}"
export VREPA_FIXTURES_PRETRAIN="$FIXTURES_PRETRAIN"
SUMMARY_DIR="$(mktemp -d)"
pnpm turbo run build --concurrency=2
# Where the binding builds, the native-only tests must run: VREPA_REQUIRE_NATIVE=1 turns their skip into a failure.
if node packages/cli/dist/cli.js backend install-native; then
  export VREPA_REQUIRE_NATIVE=1
else
  echo "[vrepa] native backend unavailable here; tests run on wasm (native-only tests say they are skipped)"
fi
node packages/cli/dist/cli.js backend --seconds 1
pnpm turbo run typecheck check test --concurrency=2 --continue
node scripts/pack-test.mjs
pnpm --filter @vrepa/example-relations-viewer run test:browser
for b in tensorflow wasm; do
  if VREPA_BACKEND=$b node packages/cli/dist/cli.js backend --check-only >/dev/null 2>&1; then
    echo "== conformance on $b"
    VREPA_BACKEND=$b node packages/cli/dist/cli.js conformance "$FIXTURES" --strict --json "$SUMMARY_DIR/conformance-$b.json"
    echo "== conformance on $b: pre-training set"
    VREPA_BACKEND=$b node packages/cli/dist/cli.js conformance "$FIXTURES_PRETRAIN" --strict --json "$SUMMARY_DIR/conformance-pretrain-$b.json"
  else
    echo "== conformance on $b: backend not available here, skipped"
  fi
done
# One closing line: conformance sub-cases over every backend that ran.
node -e '
const fs = require("fs"); let p = 0, f = 0;
for (const file of fs.readdirSync(process.argv[1])) for (const r of JSON.parse(fs.readFileSync(process.argv[1] + "/" + file, "utf8")).results) r.pass ? p++ : f++;
console.log(`conformance: ${p} passed, ${f} failed`);' "$SUMMARY_DIR"
rm -rf "$SUMMARY_DIR"
