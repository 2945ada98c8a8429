# syntax=docker/dockerfile:1
# Image of the rollout-safe admission webhook (`rollout-safe-webhook`), as
# deployed by charts/rollout-safe:
#   docker build -t rollout-safe-webhook:0.1.0 .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is
# copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p rollout-safe-webhook \
 && install -D -m 0755 target/release/rollout-safe-webhook /out/rollout-safe-webhook

# Distroless with glibc and libgcc (no shell, no package manager); the
# :nonroot variant runs as uid/gid 65532, as the chart's securityContext expects.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/rollout-safe-webhook /usr/local/bin/rollout-safe-webhook
USER 65532:65532
# 8443: HTTPS admission endpoints (/mutate, /validate, /healthz, /readyz)
# 9090: plain-HTTP Prometheus /metrics
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/rollout-safe-webhook"]
CMD ["--help"]
