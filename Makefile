# kubesigma developer targets. The two a newcomer needs: `make demo` and `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
export KUBESIGMA_ES_URL ?= http://127.0.0.1:9200

.PHONY: install demo test check lint typecheck pytest rules-check terraform-check bench-smoke bench-streaming es-up es-down kafka-up kafka-down flink-jar prism pstest clean

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

# Everything CI runs: lint, types, rule checks, a real Elasticsearch and Kafka, all tests, benchmark smoke runs.
# The portable-runner tests build Prism from the Go module proxy and build Flink's job server from Maven
# Central themselves (tests/support/portable_runners.py), and skip saying why only when no Go or Maven is installed.
test: install
	$(MAKE) check
	$(MAKE) es-up
	$(MAKE) kafka-up || { $(MAKE) es-down; exit 1; }
	status=0; $(MAKE) pytest || status=$$?; $(MAKE) kafka-down; $(MAKE) es-down; exit $$status
	$(MAKE) bench-smoke

check: lint typecheck rules-check deploy-check

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
	$(BIN)/kubesigma rules lint --policy docs/audit-policy.yaml
	$(BIN)/python -m kubesigma.pipeline.commands.rules_doc --check
	$(BIN)/sigma check --exclude attacktag --exclude d3_fendtag detections/rules

# terraform/: HCL syntax and formatting (hclfmt from the Go module proxy; providers cannot be fetched here).
terraform-check:
	bash .ci/terraform/check.sh

# What is deployed, checked before it is applied: terraform-check, terraform/dataflow/metadata.json against
# `kubesigma run`'s options, and checkov (in a virtualenv of its own, cached) over terraform/: the modules,
# the Flink manifests and the Dockerfiles.
.PHONY: deploy-check flex-template flink-image wheel
deploy-check: install
	PYTHON=$(BIN)/python bash .ci/deploy/check.sh

# kubesigma's wheel in dist/, what the images install (terraform/install-kubesigma.sh).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
wheel: install
	rm -f dist/kubesigma-*.whl
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

# The Dataflow Flex Template: builds the wheel, checks metadata.json, prints the commands that build the
# image and the template spec (no Docker or gcloud here). Set FLEX_IMAGE and FLEX_SPEC to yours.
FLEX_IMAGE ?= REGION-docker.pkg.dev/PROJECT/REPOSITORY/kubesigma-dataflow:$(VERSION)
FLEX_SPEC ?= gs://BUCKET/templates/kubesigma-$(VERSION).json
flex-template: wheel
	$(BIN)/python -m kubesigma.pipeline.commands.flex_template --check
	@echo "# Dataflow Flex Template for $(notdir $(wildcard dist/kubesigma-$(VERSION)-*.whl)):"
	@echo "docker build -f terraform/dataflow/Dockerfile -t $(FLEX_IMAGE) . && docker push $(FLEX_IMAGE)"
	@echo "gcloud dataflow flex-template build $(FLEX_SPEC) --image=$(FLEX_IMAGE) --sdk-language=PYTHON --metadata-file=terraform/dataflow/metadata.json"
	@echo "# then: terraform/gke with dataflow_job=true flex_template_spec=$(FLEX_SPEC) flex_template_image=$(FLEX_IMAGE)"

# The Flink image (terraform/flink/Dockerfile): the wheel and Beam's Flink job-server jar in dist/, and the
# command that builds it.
FLINK_IMAGE ?= REGISTRY/kubesigma-flink:$(VERSION)
flink-image: wheel
	rm -f dist/beam-runners-flink-*-job-server-*.jar
	cp "$$(PYTHON=$(BIN)/python bash .ci/flink/job-server.sh)" dist/
	@echo "docker build -f terraform/flink/Dockerfile -t $(FLINK_IMAGE) . && docker push $(FLINK_IMAGE)"
	@echo "# then set spec.image in terraform/flink/manifests/flinkdeployment.yaml and: kubectl apply -k terraform/flink/manifests"

# pytest exits 5 when it collected no test: that fails the target like any other failure.
pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-smoke: install
	$(BIN)/python bench/engine.py --quick --json
	$(BIN)/python bench/noise.py --quick --json
	# A short fuzzing campaign (~30 s): fails on a crash, a broken count or a leaked credential.
	$(BIN)/python bench/fuzz.py --records 2000 --check --json

# The streaming job on embedded Flink from Kafka into Elasticsearch: throughput and alert latency next to the
# batch pipeline (bench/streaming.py; starts Elasticsearch and Kafka when none runs). `--quick`: about 3
# minutes, too long for every CI run; the full run is `$(BIN)/python bench/streaming.py --json`.
bench-streaming: install
	$(BIN)/python bench/streaming.py --quick --json

# A real single-node Elasticsearch 8.14 on 127.0.0.1:9200 (jars from Maven Central), in the background.
es-up:
	@bash .ci/es/es.sh up

es-down:
	@bash .ci/es/es.sh down

# A real single-node Apache Kafka 4.1 in KRaft mode on 127.0.0.1:9092 (PLAINTEXT) and :9093 (SASL_SSL with a
# throwaway CA under .kafka/tls), jars from Maven Central cached under ~/.cache/kubesigma/kafka.
kafka-up:
	@bash .ci/kafka/kafka.sh up

kafka-down:
	@bash .ci/kafka/kafka.sh down

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
