# The two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PY := .venv/bin/python
export QT_API := pyside6

.PHONY: run test bench models demo package setup clean

setup:
	@scripts/bootstrap.sh dev

run: setup
	.venv/bin/earworm

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q tests

bench:
	@EARWORM_EXTRA_APT="fluid-soundfont-gm" scripts/bootstrap.sh dev,bench
	QT_QPA_PLATFORM=offscreen $(PY) -m tests.benchmarks.run_all

models: setup
	$(PY) -m pip install -q torch==2.13.0 onnx onnxscript
	$(PY) -m models.train_all

demo: setup
	$(PY) -m resources.make_demo

package: setup
	$(PY) -m pip install -q pyinstaller
	bash packaging/smoke_test.sh

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache
