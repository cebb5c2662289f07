# wa-supervisor: Debian with the system Chromium, run as a non-root user, data in a volume.
# Mirrors .ci/run's install steps (chromium from Debian's packages).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-headless-shell tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 wa \
 && mkdir /data && chown wa:wa /data
COPY --from=build /src/target/release/wa-supervisor /usr/local/bin/wa-supervisor
USER wa
VOLUME /data
EXPOSE 8080
# tini reaps exited Chromium children; Chromium processes die with the supervisor (PR_SET_PDEATHSIG).
ENTRYPOINT ["/usr/bin/tini", "--", "wa-supervisor"]
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:8080"]
