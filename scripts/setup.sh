#!/usr/bin/env bash
# One-time (idempotent) setup: system tools from Debian, then a project-local .venv.
# Called by `make run` / `make test`; safe to re-run (does nothing when up to date).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system tools (Debian packages) -------------------------------------------------
declare -A tool_pkg=([ffmpeg]=ffmpeg [ffprobe]=ffmpeg [fpcalc]=libchromaprint-tools [sox]=sox
                     [espeak-ng]=espeak-ng [dpkg-deb]=dpkg [apt-get]=apt)
# SETUP_BROWSER=1 also installs chromium (only scripts/screenshots.py needs it).
[ "${SETUP_BROWSER:-0}" = 1 ] && tool_pkg[chromium]=chromium
missing=()
for tool in "${!tool_pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${tool_pkg[$tool]}")
done
# apt lists are needed by `apt-get download` (the catalog stage) even when every tool is present.
lists_missing=0
ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || lists_missing=1
if [ ${#missing[@]} -gt 0 ] || [ $lists_missing -eq 1 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${pkgs:-(none, refreshing apt lists)}"
    apt-get update -q
    [ -n "$pkgs" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs
  else
    echo "setup: missing Debian packages: ${pkgs:-none}; apt lists present: $((1 - lists_missing))" >&2
    echo "setup: run as root:  apt-get update && apt-get install -y $pkgs" >&2
    exit 1
  fi
fi

# --- project virtual environment -----------------------------------------------------
PY=${PYTHON:-python3}
stamp=.venv/.resonance-installed
want=$( (cat pyproject.toml constraints.txt scripts/setup.sh; pwd) | sha256sum | cut -c1-16)  # a moved project reinstalls (editable path)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: creating .venv (first run takes about 2 minutes, ~2.5 GB)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_install() {  # quiet on success; on failure show pip's own words (minus this machine's index warnings)
  if ! .venv/bin/python -m pip install -q "$@" > .venv/pip.log 2>&1; then
    grep -v '^WARNING: Location' .venv/pip.log | tail -30 >&2
    echo "setup: pip install $* failed (full log: .venv/pip.log)" >&2; exit 1
  fi
}
pip_install --upgrade pip
# The CPU torch wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
pip_install torch==2.13.0
# Every other package at the versions in constraints.txt (the numerics that made the recorded figures).
pip_install -c constraints.txt -e ".[dev]"
.venv/bin/python -c "import torch, resonance; assert torch.__version__.startswith('2.13.0')" \
  || { echo "setup: .venv is incomplete (see pip output above)" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: .venv ready"
