# The one way to run things. See README.md.
PY := .venv/bin/python
STATE ?= $(CURDIR)/.lab

.PHONY: setup test demo bench bench-short pack lab-up lab-down lint

setup:
	sh tools/setup.sh

# set up the machine, then run every test (CI runs exactly this)
test: setup
	.venv/bin/vermin --no-tips --violations -t=3.6- dom0_plugin xsc_contract
	$(PY) -m pytest tests
	XSCNG_BENCH_SHORT=1 $(PY) -m bench --short

# bring up a lab pool and walk through the product on it
demo: setup
	$(PY) tools/demo.py

bench: setup
	$(PY) -m bench

# every benchmark with few samples: figures printed, not judged (part of `make test`)
bench-short: setup
	XSCNG_BENCH_SHORT=1 $(PY) -m bench --short

pack: setup
	$(PY) -m pack --out build/pack

lab-up: setup
	$(PY) -m lab up --state $(STATE)

lab-down:
	$(PY) -m lab down --state $(STATE)
