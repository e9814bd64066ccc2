#!/usr/bin/env bash
# `make demo`: the whole main job on the bundled sample.
#   1. mmloom build   (all five sources, CLIP with the tiny local model, dedupe)  -> out/sample
#   2. a local Argilla (started if none runs from out/argilla) with annotators alice and bob
#   3. mmloom annotate push  (one dataset per category: sample-sa, -pbl, -msr, -if)
#   4. mmloom publish -> out/release
#   5. prints the commands of the annotation round (scripts/demo_next_steps.sh), which work as
#      printed: `source out/argilla/argilla.env && .venv/bin/mmloom annotate pull ...`
# The local server's owner API key comes from MMLOOM_ARGILLA_OWNER_API_KEY; if that is unset,
# the demo generates one once and keeps it in out/argilla/demo-owner-key (mode 600, never
# printed), so later demos can talk to the same server. Clients find the server through
# out/argilla/argilla.env (mode 600: ARGILLA_API_URL and ARGILLA_API_KEY). Stop it with
#   .venv/bin/mmloom annotate images stop && .venv/bin/mmloom annotate stop --home out/argilla
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-out/sample}
PORT=${ARGILLA_PORT:-6900}
export MMLOOM_ARGILLA_HOME=${MMLOOM_ARGILLA_HOME:-$PWD/out/argilla}
mkdir -p "$MMLOOM_ARGILLA_HOME"

"$BIN/mmloom" build --config configs/sample.yaml --output "$OUT" --overwrite
"$BIN/mmloom" show "$OUT" --summary

if [ -z "${MMLOOM_ARGILLA_OWNER_API_KEY:-}" ]; then
  keyfile="$MMLOOM_ARGILLA_HOME/demo-owner-key"
  if [ ! -s "$keyfile" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$keyfile")
  fi
  MMLOOM_ARGILLA_OWNER_API_KEY=$(cat "$keyfile")
  export MMLOOM_ARGILLA_OWNER_API_KEY
fi
url=$("$BIN/python" -c 'import sys; from annotation.server.runtime import running_url; print(running_url(sys.argv[1]) or "")' "$MMLOOM_ARGILLA_HOME")
if [ -z "$url" ]; then
  "$BIN/mmloom" annotate serve --port "$PORT" --home "$MMLOOM_ARGILLA_HOME" \
    --annotator alice --annotator bob
  url="http://127.0.0.1:$PORT"
fi
envfile="$MMLOOM_ARGILLA_HOME/argilla.env"
# (re)written here too, for a server that was already running; the key goes through the
# environment, never through a command line
"$BIN/python" -c 'import os, sys; from annotation.envfile import write_env_file
write_env_file(sys.argv[1], sys.argv[2], os.environ["MMLOOM_ARGILLA_OWNER_API_KEY"])' "$envfile" "$url"
# shellcheck source=/dev/null
source "$envfile"
"$BIN/mmloom" annotate push --build "$OUT" --dataset sample --workspace mmloom

"$BIN/mmloom" publish --build "$OUT" --output out/release --version 0.1.0 --force

echo
echo "build:      $OUT (records, dead letters, stats.json)"
echo "release:    out/release (dataset card README.md; report: out/release/report/index.html)"
echo "annotation: $url (datasets sample-sa, sample-pbl, sample-msr, sample-if in workspace mmloom;"
echo "            annotators' passwords: ${MMLOOM_ARGILLA_HOME#"$PWD"/}/passwords/NAME.txt;"
echo "            more annotators: $BIN/mmloom annotate users add NAME --home ${MMLOOM_ARGILLA_HOME#"$PWD"/})"
echo
# shellcheck source=scripts/demo_next_steps.sh
source scripts/demo_next_steps.sh
demo_next_steps "$BIN" "${envfile#"$PWD"/}" "$OUT" sample mmloom out/annotations out/release-annotated
