#!/usr/bin/env bash
# Set-up and run in one command, on a fresh machine:
#   ./run.sh app     create .venv, install requirements.txt, then `streamlit run app.py` (http://localhost:8501)
#   ./run.sh test    the same set-up, plus Debian's chromium for the browser test, then the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"

setup() {
  if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
  if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
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

case "${1:-}" in
  app)
    setup
    shift
    exec .venv/bin/streamlit run app.py "$@"
    ;;
  test)
    setup
    browser
    shift
    export HF_HUB_OFFLINE=1
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@" tests
    ;;
  *)
    echo "usage: ./run.sh app | test [pytest options]" >&2
    exit 2
    ;;
esac
