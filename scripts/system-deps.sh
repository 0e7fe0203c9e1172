#!/usr/bin/env bash
# Debian packages the test suite starts for real: a PostgreSQL server (initdb'd in a temp
# folder by the tests) and Chromium (renders the model card headless). Installs the
# missing ones when we may; otherwise says what to do.
set -euo pipefail
missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  missing+=(chromium)
fi
if [ "${#missing[@]}" = 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian package(s) ${missing[*]} for the database and browser tests" >&2
  if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "warning: apt-get could not install ${missing[*]}; the tests that need them will be skipped" >&2
  fi
else
  for pkg in "${missing[@]}"; do
    case "$pkg" in
      postgresql) echo "note: PostgreSQL server binaries not found; its tests will be skipped (sudo apt-get install postgresql)" >&2 ;;
      chromium) echo "note: Chromium not found; the model card rendering test will be skipped (sudo apt-get install chromium)" >&2 ;;
    esac
  done
fi
