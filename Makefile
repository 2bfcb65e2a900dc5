# sinkworker: the commands a newcomer needs. `make test` does all set-up on a
# fresh machine (starts the real Kafka and PostgreSQL) and runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: test unit lint lint-size services-up services-down cdc-up bench-drain bench bench-smoke chaos-full build

build:
	go build -o bin/sinkworker ./cmd/sinkworker

# The README's test command. -p 1: some end-to-end tests stop PostgreSQL or the broker,
# which other packages' tests must not see.
test: services-up cdc-up
	eval "$$(scripts/services env)" && eval "$$(scripts/cdc env)" && go test -race -count=1 -p 1 -timeout 25m ./...

# Fast tests only: the packages that need no service.
unit:
	go test -race -count=1 ./batch/ ./bench/internal/... ./internal/testenv/ ./internal/layout/ ./sink/decode/ ./sink/dlq/ ./sink/observe/ ./sink/audit/

lint: lint-size
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	go vet ./...

# No tracked file over 1 MB (a test binary, a dump) outside testdata/ and bench/results/.
lint-size:
	@big=$$(git ls-files -z | xargs -0 -r sh -c 'find "$$@" -maxdepth 0 -type f -size +1048576c 2>/dev/null' find | grep -Ev '(^|/)testdata/|^bench/results/' || true); \
	test -z "$$big" || { echo "$$big"; echo "lint-size: the tracked files above are over 1 MB (allowed only under testdata/ and bench/results/)"; exit 1; }

services-up:
	scripts/services up

services-down:
	scripts/services down

# The change data capture pipeline the replication tests use: a source PostgreSQL with
# wal_level=logical and Kafka Connect with Debezium's PostgreSQL connector (scripts/cdc).
cdc-up: services-up
	scripts/cdc up

# The suite's drain scenario alone: 1,000,000 pre-produced records at 8 partitions, one worker
# with its defaults vs the database-only ceiling, start-up left out; bench/results/<date>-drain.md.
bench-drain: services-up
	eval "$$(scripts/services env)" && go run ./bench/suite -scenarios drain -name drain $(BENCH_FLAGS)

# The bench suite (bench/README.md): ceiling, sinkworker sweep, naive consumer, Kafka Connect +
# Debezium, memory, drain, rebalance; writes bench/results/<date>-suite.md, .csv, .png. BENCH_FLAGS=-full for the
# whole sweep, e.g. make bench BENCH_FLAGS="-full -memory-10m".
bench: services-up
	eval "$$(scripts/services env)" && go run ./bench/suite $(BENCH_FLAGS)

# The same harness at a tiny size, under a minute (CI runs it so it cannot rot); results in a temp dir.
bench-smoke: services-up
	eval "$$(scripts/services env)" && go run ./bench/suite -smoke

# The chaos suite at full size (make test runs the CI size); see chaos/README.md.
chaos-full: services-up
	eval "$$(scripts/services env)" && CHAOS_SIZE=full go test -count=1 -timeout 3h -v ./chaos/
