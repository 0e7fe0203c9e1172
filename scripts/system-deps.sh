#!/usr/bin/env bash
# Debian packages the test suite starts for real: a PostgreSQL server (initdb'd in a temp
# folder by the tests). Installs them when missing and we may; otherwise says what to do.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian package postgresql for the database tests" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "note: PostgreSQL server binaries not found; its tests will be skipped (sudo apt-get install postgresql)" >&2
fi
