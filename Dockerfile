# CloudSpend service image: build with the Rust toolchain, run on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cloudspend

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/cloudspend --create-home cloudspend
COPY --from=build /src/target/release/cloudspend /usr/local/bin/cloudspend
USER cloudspend
WORKDIR /var/lib/cloudspend
ENV CLOUDSPEND_BIND=0.0.0.0:9000
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9000"]
ENTRYPOINT ["cloudspend"]
CMD ["serve"]
