# syntax=docker/dockerfile:1
#
# Sluice's container image: the static sluice binary on distroless/static
# (no shell, no libc, no package manager), run as an unprivileged user,
# serving on 0.0.0.0:8000 inside the container.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t sluice .
#   docker run -p 127.0.0.1:8000:8000 -v sluice-data:/data sluice
#
# Without REDIS_URL the durable embedded engine keeps its queues in /data
# (SLUICE_DATA_DIR). To use Redis, set REDIS_URL and SLUICE_DATA_DIR to
# the empty string (the two select different engines): see
# deploy/compose.yaml.
#
# The deploy tests (deploy/docker_test.go) build the binary with the same
# script and run it as this image does, reading the USER, ENV, ENTRYPOINT,
# CMD and HEALTHCHECK lines below.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN VERSION="${VERSION}" COMMIT="${COMMIT}" scripts/build.sh /out/sluice && mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sluice /sluice
# /data belongs to the unprivileged user: the only place the process writes.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV SLUICE_ADDR=0.0.0.0:8000 SLUICE_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
# distroless has no curl: the binary checks itself (GET /health/live on
# SLUICE_ADDR, through loopback).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["/sluice", "health"]
ENTRYPOINT ["/sluice"]
CMD ["serve", "--log-format", "json"]
