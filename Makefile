# kubesigma developer targets. The two a newcomer needs: `make demo` and `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
export KUBESIGMA_ES_URL ?= http://127.0.0.1:9200

.PHONY: install demo test check lint typecheck pytest rules-check terraform-check bench-smoke es-up es-down flink-jar prism pstest clean

# A fresh virtualenv with everything the tests need (`pip install -e '.[dev]'`), the kubesigma command included.
$(BIN)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# sigma-cli lists plugins by walking the sigma.pipelines namespace, which setuptools' editable
	# finder does not extend: link our plugin folder into site-packages (idempotent).
	$(BIN)/python -m sigma.pipelines.kubesigma._devinstall
	touch $@

install: $(BIN)/.installed

# Generate a small cluster's audit log with the mission's attacks in it, and run the detection job over it.
demo: install
	mkdir -p out/demo
	$(BIN)/kubesigma demo generate --out out/demo/audit.jsonl --seed 7 --events 5000
	$(BIN)/kubesigma run --input out/demo/audit.jsonl --cluster-name demo \
	    --alerts-out out/demo/alerts.jsonl --dead-letter out/demo/dead-letters.jsonl \
	    --metrics-out out/demo/metrics.json
	@echo "alerts: out/demo/alerts.jsonl"

# Everything CI runs: lint, types, rule checks, a real Elasticsearch, all tests, benchmark smoke runs.
# The portable-runner tests build Prism from the Go module proxy and build Flink's job server from Maven
# Central themselves (tests/support/portable_runners.py), and skip saying why only when no Go or Maven is installed.
test: install
	$(MAKE) check
	$(MAKE) es-up
	status=0; $(MAKE) pytest || status=$$?; $(MAKE) es-down; exit $$status
	$(MAKE) bench-smoke

check: lint typecheck rules-check terraform-check

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow setup.py's folder mapping, so it checks the roles through a kubesigma/ view of links.
typecheck: install
	mkdir -p .typecheck/kubesigma
	for role in connectors detections pipeline; do ln -sfn ../../$$role .typecheck/kubesigma/$$role; done
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml -p kubesigma

rules-check: install
	$(BIN)/kubesigma rules check
	$(BIN)/kubesigma rules test
	$(BIN)/kubesigma rules coverage --policy docs/audit-policy.yaml
	$(BIN)/python -m kubesigma.pipeline.commands.rules_doc --check
	$(BIN)/sigma check --exclude attacktag --exclude d3_fendtag detections/rules

# terraform/: HCL syntax and formatting (hclfmt from the Go module proxy; providers cannot be fetched here).
terraform-check:
	bash .ci/terraform/check.sh

# pytest exits 5 when it collected no test: that fails the target like any other failure.
pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-smoke: install
	$(BIN)/python bench/engine.py --quick --json
	$(BIN)/python bench/noise.py --quick --json
	# A short fuzzing campaign (~30 s): fails on a crash, a broken count or a leaked credential.
	$(BIN)/python bench/fuzz.py --records 2000 --check --json

# A real single-node Elasticsearch 8.14 on 127.0.0.1:9200 (jars from Maven Central), in the background.
es-up:
	@bash .ci/es/es.sh up

es-down:
	@bash .ci/es/es.sh down

# Beam's Flink job-server jar (published, or built from Beam's Flink runner module on Maven Central).
flink-jar: install
	PYTHON=$(BIN)/python bash .ci/flink/job-server.sh

# Beam's Prism runner built from the Go module proxy (PrismRunner with --prism_location).
prism:
	bash .ci/prism/build-prism.sh

# Google's in-memory Pub/Sub fake (pstest) built from the Go module proxy, for the Pub/Sub end-to-end test
# (which builds and starts it itself on 127.0.0.1).
pstest:
	bash .ci/pubsub/build-pstest.sh

clean:
	rm -rf out .typecheck .pytest_cache .mypy_cache .ruff_cache
