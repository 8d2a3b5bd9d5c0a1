#!/usr/bin/env bash
# Installs everything S2VC Studio needs on a fresh machine.
#   bash setup.sh            Python packages (requirements.txt)
#   bash setup.sh --browser  also Debian's chromium, used by the app's end-to-end browser test
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r requirements.txt
if [[ "${1:-}" == "--browser" ]] && ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
