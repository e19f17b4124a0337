# Builds the stockd image: docker build -t stockd:0.1.0 .
# protoc comes from the protoc-bin-vendored crate, so the builder needs no
# protobuf-compiler package.

FROM rust:1-bookworm AS builder
WORKDIR /app

# Dependencies first, with stand-in sources, so that this layer is reused
# while only the code under src/ changes. build.rs and proto/ are real: the
# generated gRPC code is cached with the dependencies.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN mkdir -p src/bin/stockd_bench \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/bin/stockd_bench/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin stockd \
    && rm -rf src

# The real build. Touch the crate roots so that cargo rebuilds the crate over
# the stand-ins whatever the copied files' timestamps are.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin stockd

FROM debian:bookworm-slim AS runtime
# ca-certificates is left unpinned on purpose: it should follow bookworm's updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 stockd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin stockd
COPY --from=builder /app/target/release/stockd /usr/local/bin/stockd
USER 10001
# 50051: gRPC (STOCKD_GRPC_ADDR); 8080: /metrics, /healthz, /readyz (STOCKD_HTTP_ADDR).
EXPOSE 50051 8080
ENTRYPOINT ["stockd"]
CMD ["serve"]
