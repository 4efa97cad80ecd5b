# The observer image (Debian 12), built from source:
#   docker build --network host -t fraiseql-observer .
# The build stage compiles and makes the Debian package (packaging/); the
# runtime stage installs that package with apt, so the image gets exactly the
# libraries the package Depends on, which dpkg-shlibdeps derives from what the
# binaries link: they cannot drift apart. packaging/docker/Dockerfile.deb is the
# same runtime stage over a package built on the host (scripts/docker-image.sh,
# the docker tests); tests/docker/image_test.sh checks the two stay identical.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build && JOBS="$(nproc)" scripts/build.sh \
    && cd build && cpack -G DEB && mkdir /deb && cp fraiseql-observer_*_amd64.deb /deb/

FROM debian:12 AS runtime
COPY --from=build /deb/ /tmp/deb/
# --- runtime (identical in Dockerfile and packaging/docker/Dockerfile.deb) ---
# A fixed non-root uid/gid (10001) so orchestrators can check runAsNonRoot; the
# package's postinst finds the user and only sets the permissions of /etc/fraiseql.
RUN groupadd --system --gid 10001 fraiseql \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin fraiseql \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       /tmp/deb/fraiseql-observer_*_amd64.deb ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* /tmp/deb \
    && observer-node --version
# /etc/fraiseql: observer.toml (topology 1) and examples/*.toml, as the spec's
# commands name them (`fraiseql-observer --config examples/01-postgresql-only.toml`).
WORKDIR /etc/fraiseql
USER 10001:10001
# Metrics, /healthz and /readyz when [metrics] enabled = true (docker-compose/config/).
EXPOSE 9464
ENTRYPOINT ["observer-node"]
CMD ["--role", "all", "--config", "/etc/fraiseql/observer.toml"]
