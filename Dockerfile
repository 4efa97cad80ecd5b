# observer-node image (Debian 12). Build: docker build -t fraiseql-observer .
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh
COPY . .
RUN scripts/build.sh

FROM debian:12
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17 libpqxx-6.4 libboost-json1.81.0 libtomlplusplus3 \
      libcurl4 libspdlog1.10 libfmt9 libprometheus-cpp-core1.0 libcivetweb1 libhiredis0.14 libssl3 \
      ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/apps/observer/observer-node /src/build/apps/ctl/observerctl /usr/local/bin/
# The spec's names.
RUN ln -s observer-node /usr/local/bin/fraiseql-observer && ln -s observerctl /usr/local/bin/fraiseql-observers
COPY config/ /etc/fraiseql/
ENTRYPOINT ["observer-node"]
CMD ["--role", "all", "--config", "/etc/fraiseql/observer.toml"]
