# The two commands of the README's quick start: `make demo` and `make test`.
.PHONY: setup setup-musicgen demo test test-unit test-integration bench soak clean

setup:
	@scripts/setup.sh

setup-musicgen:
	@scripts/setup.sh --musicgen

demo: setup
	.venv/bin/jackgen demo

test: setup-musicgen
	scripts/check-imports.sh
	.venv/bin/python -m pytest -q

test-unit: setup-musicgen
	.venv/bin/python -m pytest -q tests/unit

test-integration: setup-musicgen
	.venv/bin/python -m pytest -q tests/integration

bench: setup
	.venv/bin/python bench/engine.py --tracks 16 --frames 256 --seconds 60 --json bench/out/engine-256.json

# a night compressed into MINUTES (default 10): faults injected, RSS/xruns/jobs measured, JSON + PNG
soak: setup
	.venv/bin/python -m pip install -q -e '.[bench]'
	.venv/bin/python bench/soak.py --minutes $${MINUTES:-10} --json bench/out/soak.json

clean:
	rm -rf .venv build *.egg-info bridge/*.so dsp/*.so
