# tributary — the two commands: `make demo` and `make test`.
GO      ?= go
BIN     := bin/tributary
DEMODIR ?= .demo

.PHONY: all build test unit vet bqemu demo bench generate clean airflow-test

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tributary

# The BigQuery emulator, built once into the cache (about 20 minutes the first time).
bqemu:
	@.ci/bqemu.sh >/dev/null

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Every test: unit and integration (the latter start the local stack
# themselves), then the Airflow DAGs' tests in the pinned venv.
test: bqemu vet
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) airflow-test

airflow-test:
	@venv=$$(.ci/airflow-venv.sh) && AIRFLOW_HOME=$$(mktemp -d) $$venv/bin/pytest -q airflow/tests

# Unit tests only: no local stack.
unit:
	$(GO) test -race -count=1 -skip '^TestIntegration' ./...

# A marketplace streamed from Postgres into BigQuery on the local stack, with
# measured counts, lag and an analyst's query; until Ctrl-C, or for
# DURATION (e.g. make demo DURATION=60s). RATE sets transactions per second.
DURATION ?= 0
RATE     ?= 20
demo: build bqemu
	rm -rf $(DEMODIR)
	$(BIN) demo --dir $(DEMODIR) --duration $(DURATION) --rate $(RATE)

# Benchmarks against references measured side by side in the same run, as
# one table of the issue's figures (metric, measured, reference, ratio,
# target, met?) on stdout and as JSON in bench/results/<date>.json, beside
# each package's raw `go test -bench` output. BIG_ROWS sets the rows of the
# one big transaction passed through capture and sink. Takes several minutes.
BIG_ROWS ?= 5000000
bench: bqemu
	$(GO) run ./internal/benchreport -out bench/results -big-rows $(BIG_ROWS)

generate:
	$(GO) generate ./...

clean:
	rm -rf bin $(DEMODIR)
