# Dockerfile — builds the jobq server in a Rust image and ships only the
# binary in a slim Debian image that runs as a non-root user.
#
#   docker build -t jobq .
#   docker run --rm -p 127.0.0.1:8081:8081 -e REDIS_URL=redis-host:6379 -e API_TOKEN=... jobq
#
# Only Cargo.toml, Cargo.lock, vendor/ (the patched tiny_http) and src/ are
# copied in: tests, benches, examples and docs are not needed to build the binary.

# ---- build stage -------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependency-caching layer: build all dependencies against placeholder sources,
# so this layer is reused until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources, and build.rs (which embeds the Lua scripts and the API document
# without their comments and indentation). COPY keeps the files' own timestamps, which may be older
# than the placeholder build above; touch them so cargo rebuilds the crate.
COPY build.rs ./
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

# ---- runtime stage -----------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates is left unpinned on purpose: it should follow Debian's updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so files it writes to mounted volumes have a known owner.
RUN groupadd --gid 10001 jobq \
    && useradd --uid 10001 --gid jobq --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin jobq

WORKDIR /app
RUN mkdir -p /app/data && chown jobq:jobq /app/data

COPY --from=builder /build/target/release/jobq /usr/local/bin/jobq

# Listen on all interfaces inside the container; the port is published by
# `docker run -p` or docker-compose.yml.
ENV HOST=0.0.0.0 PORT=8081
EXPOSE 8081

# The image has no curl: `jobq health` asks GET /health on HOST:PORT (loopback for 0.0.0.0)
# and exits 0 only for 200 healthy, which needs Redis to answer too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/jobq", "health"]

# The jobq user (uid 10001) is created above, so the name resolves in the image.
# hadolint ignore=DL3066
USER jobq
ENTRYPOINT ["/usr/local/bin/jobq"]
