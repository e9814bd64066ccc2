#!/usr/bin/env bash
# Install the Debian packages mmloom's tests and local services need, if they are missing:
#   redis-server  (the local Argilla server's queue)
#   chromium      (headless browser tests of the annotation UI and the release report)
# Idempotent and quiet when everything is present. Needs root (or sudo) only when installing.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
