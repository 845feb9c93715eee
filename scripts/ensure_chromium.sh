#!/usr/bin/env bash
# Installs Debian's chromium when it is missing (as root, or with passwordless sudo) and
# prints its version; fails, never skips, when it cannot. Usage: ensure_chromium.sh NAME
# (NAME prefixes the messages: the check that needs the browser).
set -euo pipefail
name="${1:-ensure_chromium}"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
  else
    echo "$name: FAIL: chromium is not installed and there is no root or sudo to install it" >&2
    exit 1
  fi
  echo "$name: installing Debian's chromium"
  "${apt[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq chromium >/dev/null
fi
chromium --version 2>/dev/null
