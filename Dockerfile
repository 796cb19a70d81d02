# The three Cruddur images from one build stage: docker-compose.yml builds each with `target:`, and by hand
#   docker build --target backend|frontend|xray-daemon .
# The three binaries and the browser bundle come from one cargo build, so the images share the compiled workspace
# and the build cache; the cache mounts keep the registry, the compiled dependencies and the wasm tools between
# builds. No `# syntax=` line: BuildKit's built-in Dockerfile frontend has the cache mounts, and naming an external
# frontend would pull it from a registry on every build.
FROM rust:1.95-bookworm AS build
# npm carries wasm-opt (binaryen); everything else comes from crates.io.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add wasm32-unknown-unknown
WORKDIR /workspace
# Cargo's home in a cache mount: the registry and wasm-bindgen-cli stay between builds (cargo and rustc themselves
# are rustup's, on the PATH).
ENV CARGO_HOME=/cargo-home PATH=/cargo-home/bin:$PATH
COPY . .
# One RUN: the three binaries (one cargo build), then the browser bundle as `cargo xtask frontend` makes it (the app
# for wasm32, wasm-bindgen at Cargo.lock's version, wasm-opt -Oz from npm's binaryen, the static files), written
# out here because compiling xtask itself would double the build; xtask/tests/deployment.rs keeps the two equal.
# SQLX_OFFLINE (set in .cargo/config.toml) compiles the queries from backend/.sqlx: no database needed here.
RUN --mount=type=cache,target=/cargo-home \
    --mount=type=cache,target=/root/.npm \
    --mount=type=cache,target=/workspace/target \
    cargo build --release --locked \
        --package cruddur-backend --bin cruddur-backend \
        --package xray-daemon --bin xray \
        --package cruddur-frontend-server --bin cruddur-frontend \
    && mkdir -p /out/dist \
    && cp target/release/cruddur-backend target/release/xray target/release/cruddur-frontend /out/ \
    && cargo build --locked --package cruddur-frontend-app --target wasm32-unknown-unknown --profile wasm-release \
    && bindgen="$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;q}' Cargo.lock)" \
    && if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $bindgen" ]; then \
        cargo install --force wasm-bindgen-cli --version "$bindgen"; fi \
    && if ! target/frontend-tools/node_modules/.bin/wasm-opt --version | grep -q "version 132"; then \
        npm install --no-save --no-audit --no-fund --prefix target/frontend-tools binaryen@132.0.0; fi \
    && wasm-bindgen --target web --no-typescript --out-name cruddur --out-dir /out/dist \
        target/wasm32-unknown-unknown/wasm-release/cruddur-frontend-app.wasm \
    && target/frontend-tools/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-reference-types --enable-multivalue \
        /out/dist/cruddur_bg.wasm -o /out/dist/cruddur_bg.wasm \
    && cp frontend/app/static/index.html frontend/app/static/style.css /out/dist/

# The run stages share this base: the CA bundle (OTLP to Honeycomb, the daemon to X-Ray, both https) and a non-root
# user. The daemon's healthcheck uses bash, part of the base.
FROM debian:bookworm-slim AS run
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin cruddur

FROM run AS xray-daemon
COPY --from=build /out/xray /usr/local/bin/xray
# The console serves the project's sampling rule (`Cruddur`), found where the daemon looks for it: the working
# directory's infra/aws/json/xray.json.
COPY infra/aws/json/xray.json /srv/cruddur/infra/aws/json/xray.json
WORKDIR /srv/cruddur
USER cruddur
EXPOSE 2000/udp 2000/tcp
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2000"]
# The binds in ENTRYPOINT, as in amazon/aws-xray-daemon: both ports on every interface (or other containers cannot
# reach them) whatever `command:` a compose file gives; a later -b/-t in the command wins.
ENTRYPOINT ["xray", "-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000"]
CMD ["--local-mode"]

# curl serves the healthchecks of the two HTTP servers.
FROM run AS http
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

FROM http AS backend
COPY --from=build /out/cruddur-backend /usr/local/bin/cruddur-backend
USER cruddur
ENV PORT=4567 BIND_ADDRESS=0.0.0.0
EXPOSE 4567
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=12 \
    CMD ["curl", "--fail", "--silent", "--output", "/dev/null", "http://127.0.0.1:4567/api/health-check"]
ENTRYPOINT ["cruddur-backend"]

FROM http AS frontend
COPY --from=build /out/cruddur-frontend /usr/local/bin/cruddur-frontend
COPY --from=build /out/dist /srv/cruddur/dist
USER cruddur
# BACKEND_URL is read at run time and handed to the browser through /config.json.
ENV PORT=3000 BIND_ADDRESS=0.0.0.0 FRONTEND_DIST=/srv/cruddur/dist
EXPOSE 3000
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=12 \
    CMD ["curl", "--fail", "--silent", "--output", "/dev/null", "http://127.0.0.1:3000/health"]
ENTRYPOINT ["cruddur-frontend"]
