# Hearth homeserver image. Build: docker build -t hearth .
# Run:   docker run -p 8008:8008 -v hearth-data:/data hearth
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin hearth --bin hearthctl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data hearth && mkdir -p /data && chown hearth /data
COPY --from=build /src/target/release/hearth /src/target/release/hearthctl /usr/local/bin/
COPY config.example.toml /etc/hearth/config.example.toml
USER hearth
WORKDIR /data
ENV HEARTH_DATA_DIR=/data \
    HEARTH_LISTEN__CLIENT=0.0.0.0:8008
EXPOSE 8008
HEALTHCHECK --interval=30s --timeout=5s CMD ["hearthctl", "--url", "http://127.0.0.1:8008", "health"]
ENTRYPOINT ["hearth"]
