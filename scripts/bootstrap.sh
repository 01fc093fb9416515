#!/usr/bin/env bash
# Set up everything Earworm Studio needs on a Debian/Ubuntu machine, idempotently:
#   1. system libraries (FluidSynth, PortAudio, Qt's runtime, soundfonts) via apt-get when we can;
#   2. the virtual environment .venv with the package installed (editable) and its extras.
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. "dev" (tests) or "dev,bench" (benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
extra_pkgs="${EARWORM_EXTRA_APT:-}"

# --- 1. system libraries -------------------------------------------------------------------
# Each line: a shared library (or file) we need, and the Debian package that provides it.
need=(
  "libfluidsynth.so.3 libfluidsynth3"
  "libportaudio.so.2 libportaudio2"
  "libEGL.so.1 libegl1"
  "libGL.so.1 libgl1"
  "libxkbcommon.so.0 libxkbcommon0"
  "libfontconfig.so.1 libfontconfig1"
  "libdbus-1.so.3 libdbus-1-3"
  "libglib-2.0.so.0 libglib2.0-0"
  "libxkbcommon-x11.so.0 libxkbcommon-x11-0"
  "libxcb-cursor.so.0 libxcb-cursor0"
  "libxcb-icccm.so.4 libxcb-icccm4"
  "libxcb-keysyms.so.1 libxcb-keysyms1"
  "libxcb-shape.so.0 libxcb-shape0"
  "libxcb-randr.so.0 libxcb-randr0"
  "libxcb-render-util.so.0 libxcb-render-util0"
  "libxcb-image.so.0 libxcb-image0"
  "/usr/share/sounds/sf2/TimGM6mb.sf2 timgm6mb-soundfont"
  "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3 musescore-general-soundfont-small"
)
missing=()
have_lib() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) ldconfig -p 2>/dev/null | grep -q "$1" || /sbin/ldconfig -p 2>/dev/null | grep -q "$1" ;;
  esac
}
for entry in "${need[@]}"; do
  set -- $entry
  have_lib "$1" || missing+=("$2")
done
for p in $extra_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  missing+=("python${pyver}-venv")
fi

if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else sudo="none"; fi
  if [ "$sudo" = none ] || ! command -v apt-get >/dev/null; then
    echo "earworm: missing system packages: ${missing[*]}" >&2
    echo "earworm: install them, then run this again:" >&2
    echo "    sudo apt-get update && sudo $cmd" >&2
    exit 1
  fi
  echo "earworm: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
    || { echo "earworm: apt-get failed; run by hand: sudo apt-get update && sudo $cmd" >&2; exit 1; }
fi

# --- 2. virtual environment ----------------------------------------------------------------
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "earworm: Python >= 3.10 is needed (found $(python3 --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  echo "earworm: installing the package into .venv (extras: $extras)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # pip's own notices (e.g. about the machine's configured package indexes) are noise here.
  .venv/bin/python -m pip install -q -e ".[${extras}]" 2>&1 | grep -vE "^WARNING: Location|BuildBackendWarning|^\s*(!!|\*+|corresp|with strategy|Please|By 20|See https|name as your|\*\*\*)" || true
  .venv/bin/python -c "import engine, gui" 2>/dev/null || { echo "earworm: installing the package failed (see above)" >&2; exit 1; }
  rm -f .venv/.installed-*
  touch "$stamp"
fi
