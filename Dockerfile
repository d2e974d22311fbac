# syntax=docker/dockerfile:1
# One image, both binaries: /usr/local/bin/repl-operator (the entrypoint) and
# /usr/local/bin/repl-shim (the Helm chart's shim Deployment sets it as the command).
#
#   docker build -t repl-operator:dev .

# --- build ------------------------------------------------------------------------------------
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libcpprest-dev libyaml-cpp-dev rapidjson-dev libboost-dev libboost-system-dev libssl-dev \
      prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the two binaries are built from (see .dockerignore too).
COPY CMakeLists.txt ./
COPY lib ./lib
COPY operator ./operator
COPY api-shim ./api-shim
COPY templates ./templates
# BUILD_TESTING (from include(CTest)) off: the test tree, Catch2 and the test cluster are not needed.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build build --target repl-operator repl-shim \
 && strip build/bin/repl-operator build/bin/repl-shim

# --- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# Runtime libraries only (what `ldd` lists for both binaries: cpprest, yaml-cpp, OpenSSL, prometheus-cpp's
# core; Boost.System
# is header-only in 1.74, and brotli/zlib come with libcpprest2.10), plus CA certificates.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcpprest2.10 libyaml-cpp0.7 libprometheus-cpp-core1.0 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
COPY --from=build /src/build/bin/repl-operator /src/build/bin/repl-shim /usr/local/bin/
COPY templates/ /etc/repl-operator/templates/
# The binary's built-in default is the build tree's templates/; point it at the image's copy
# (--templates still wins; the Helm chart mounts its ConfigMap over this directory).
ENV REPL_TEMPLATES=/etc/repl-operator/templates
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/repl-operator"]
