# sinkworker: the commands a newcomer needs. `make test` does all set-up on a
# fresh machine (starts the real Kafka and PostgreSQL) and runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: test unit lint services-up services-down bench-drain build

build:
	go build -o bin/sinkworker ./cmd/sinkworker

# The README's test command. -p 1: some end-to-end tests stop PostgreSQL or the broker,
# which other packages' tests must not see.
test: services-up
	eval "$$(scripts/services env)" && go test -race -count=1 -p 1 -timeout 25m ./...

# Fast tests only: the packages that need no service.
unit:
	go test -race -count=1 ./batch/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	go vet ./...

services-up:
	scripts/services up

services-down:
	scripts/services down

# First figures: drain of 1,000,000 pre-produced records vs the database-only ceiling.
bench-drain: services-up
	eval "$$(scripts/services env)" && go run ./bench/drain
