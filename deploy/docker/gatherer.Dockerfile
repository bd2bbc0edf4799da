# syntax=docker/dockerfile:1
# hostpulse gatherer image, built from the repository root:
#   docker build -f deploy/docker/gatherer.Dockerfile -t hostpulse/gatherer:0.1.0 .
# The binary is linked statically (glibc included, `cargo gatherer-dist`, see
# .cargo/config.toml); distroless/cc keeps the glibc of the build for name
# lookups: no shell, no package manager; runs as distroless's nonroot (65532).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo gatherer-dist --locked \
 && strip target/x86_64-unknown-linux-gnu/small/gatherer \
 && mkdir -p /out/var/lib/hostpulse/buffer

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-gnu/small/gatherer /usr/local/bin/gatherer
# The buffer directory, owned by the image's user (a fresh named volume
# mounted there copies this ownership).
COPY --from=build --chown=65532:65532 /out/var/lib/hostpulse /var/lib/hostpulse
# The host is mounted at /host/{proc,sys,root} (DaemonSet, compose). Without
# those mounts the gatherer fails at start instead of silently reporting the
# container's own /proc. Variables outrank a --config file: set these three
# with flags or variables, not in the file.
ENV HOSTPULSE_PROCFS=/host/proc \
    HOSTPULSE_SYSFS=/host/sys \
    HOSTPULSE_ROOTFS=/host/root
EXPOSE 8677
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gatherer"]
