#!/usr/bin/env bash
# Check the import contracts in .importlinter (run by `make test` before pytest).
# The repository maps its folders onto one `jackgen` namespace (pyproject's package-dir), which
# grimp cannot walk through an editable install, so the sources are staged as the `jackgen` tree
# they install as, and import-linter reads that copy.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/jackgen"
cp jackgen_pkg/*.py "$stage/jackgen/"
for pkg in bridge common dsp plugins daemon generators systemd; do
  while IFS= read -r -d '' f; do
    mkdir -p "$stage/jackgen/$(dirname "$f")" && cp "$f" "$stage/jackgen/$f"
  done < <(find "$pkg" -name '*.py' -not -name '*_build.py' -print0)
done
cd "$stage"
PYTHONPATH="$stage" "$OLDPWD/.venv/bin/lint-imports" --no-cache "$OLDPWD/.importlinter"
