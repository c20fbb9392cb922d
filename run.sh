#!/usr/bin/env bash
# Set-up and run in one command, on a fresh machine:
#   ./run.sh app     create .venv, install the pinned set (requirements.lock), then `streamlit run app.py`
#   ./run.sh test    the same set-up, plus Debian's chromium for the browser test and PostgreSQL's binaries for the
#                    knowledge-cloud tests (they start and stop their own server), then the whole test suite
#                    (pass pytest options after it, e.g. ./run.sh test -m "not slow" for the fast inner loop)
#   ./run.sh lock    re-resolve requirements.txt in a throw-away venv and rewrite requirements.lock
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
LOCK=requirements.lock

setup() {
  if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
  if [ ! -f .venv/.installed ] || [ "$LOCK" -nt .venv/.installed ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r "$LOCK"
    touch .venv/.installed
  fi
}

browser() {
  if [ ! -x /usr/bin/chromium ]; then
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}

postgres_binaries() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql >/dev/null
  fi
}

lock() {
  local scratch
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  "$PYTHON" -m venv "$scratch/venv"
  "$scratch/venv/bin/python" -m pip install --quiet --upgrade pip
  "$scratch/venv/bin/python" -m pip install --quiet -r requirements.txt
  {
    echo "# Every package pinned, transitive ones included: the set the whole test suite passes with."
    echo "# Made by ./run.sh lock from requirements.txt ($("$scratch/venv/bin/python" --version), $(uname -s) $(uname -m))."
    echo "# CUDA runtime wheels that PyPI's torch pulls in on Linux x86-64 carry a marker, so the lock installs elsewhere."
    "$scratch/venv/bin/python" -m pip freeze --exclude-editable | LC_ALL=C sort -f | sed -E \
      's/^((nvidia-|cuda-|triton)[^=]*==.*)$/\1 ; sys_platform == "linux" and platform_machine == "x86_64"/'
  } > "$LOCK"
  echo "wrote $LOCK ($(grep -c '==' "$LOCK") packages)"
}

case "${1:-}" in
  app)
    setup
    shift
    exec .venv/bin/streamlit run app.py "$@"
    ;;
  test)
    setup
    browser
    postgres_binaries
    shift
    export HF_HUB_OFFLINE=1
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@" tests
    ;;
  lock)
    lock
    ;;
  *)
    echo "usage: ./run.sh app | test [pytest options] | lock" >&2
    exit 2
    ;;
esac
