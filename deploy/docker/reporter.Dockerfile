# syntax=docker/dockerfile:1
# hostpulse reporter image, built from the repository root:
#   docker build -f deploy/docker/reporter.Dockerfile -t hostpulse/reporter:0.1.0 .
# The binary links glibc (and nothing else outside Rust), so distroless/cc is
# enough: no shell, no package manager; runs as distroless's nonroot (65532).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p reporter \
 && strip target/release/reporter \
 && mkdir -p /out/var/lib/hostpulse/spool

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/reporter /usr/local/bin/reporter
# The state directory, owned by the image's user: a fresh named volume
# (docker, compose) mounted there copies this ownership. The defaults
# ./spool and ./hostpulse.db land in it.
COPY --from=build --chown=65532:65532 /out/var/lib/hostpulse /var/lib/hostpulse
WORKDIR /var/lib/hostpulse
# gRPC (Ingest, Admin, health, reflection); admin HTTP (/metrics, /healthz,
# plaintext grpc.health.v1 for kubelet probes).
EXPOSE 8675 8676
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/reporter"]
