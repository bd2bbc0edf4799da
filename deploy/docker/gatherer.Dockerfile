# hostpulse gatherer image.
#   docker build -f deploy/docker/gatherer.Dockerfile -t hostpulse/gatherer .
# The binary links glibc only, so distroless/cc is enough: no shell, no
# package manager, ~25 MB in all.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gatherer \
 && strip target/release/gatherer

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/gatherer /usr/local/bin/gatherer
# In a DaemonSet the host is mounted at /host/{proc,sys,root}.
ENV HOSTPULSE_PROCFS=/host/proc \
    HOSTPULSE_SYSFS=/host/sys \
    HOSTPULSE_ROOTFS=/host/root
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/gatherer"]
