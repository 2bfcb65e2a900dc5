# syntax=docker/dockerfile:1
#
# sinkworker image: a static binary on distroless, running as the non-root user 65532.
#
#   docker build -t sinkworker:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/sinkworker:0.1.0 --push .
#
# The build stage runs on the builder's own platform and cross-compiles (pure Go, CGO off).
# -tags nodemo leaves `sinkworker demo` out, and with it the demo's embedded broker and
# PostgreSQL (kfake, embedded-postgres, lib/pq): the image's demo says so and exits 2.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source-only change reuses this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -tags nodemo -ldflags "-s -w" -o /out/sinkworker ./cmd/sinkworker

# static-debian12 has CA certificates (TLS to brokers and PostgreSQL), tzdata and
# /etc/passwd entries, and no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sinkworker /sinkworker
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# HTTP_ADDR's default: /metrics, /healthz, /readyz.
EXPOSE 9090
# Exec form: sinkworker is PID 1 and receives SIGTERM itself, then drains within
# SHUTDOWN_TIMEOUT (30s by default) and exits 0.
ENTRYPOINT ["/sinkworker"]
