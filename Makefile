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

# Benchmarks against references measured side by side in the same run
# (capture vs pg_recvlogical, a big transaction's peak RSS, the hot path's
# allocations, the sink's encoding vs plain goavro, a snapshot vs COPY).
# Figures go to stdout and bench/results/.
bench: bqemu
	@mkdir -p bench/results
	$(GO) test -run '^$$' -bench . -benchtime=1x -benchmem ./capture/ 2>&1 | tee bench/results/capture.txt
	$(GO) test -run '^$$' -bench . -benchmem ./schema/ 2>&1 | tee bench/results/schema.txt
	$(GO) test -run '^$$' -bench . -benchmem ./sink/ 2>&1 | tee bench/results/sink.txt
	$(GO) test -run '^$$' -bench . -benchtime=1x ./internal/backfill/ 2>&1 | tee bench/results/backfill.txt

generate:
	$(GO) generate ./...

clean:
	rm -rf bin $(DEMODIR)
