# hostpulse reporter image.
#   docker build -f deploy/docker/reporter.Dockerfile -t hostpulse/reporter .
# The binary links glibc only, so distroless/cc is enough: no shell, no
# package manager, ~25 MB in all.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p reporter \
 && strip target/release/reporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/reporter /usr/local/bin/reporter
EXPOSE 8675
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/reporter"]
