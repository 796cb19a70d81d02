# A local stand-in for the official rust:1.95-bookworm image, for machines that cannot reach a registry (built by
# `cargo xtask compose` when the image is missing): the debian:bookworm-slim stand-in with the C toolchain and
# libraries the official image (buildpack-deps) brings for crates' build scripts, and this machine's own Rust 1.95
# toolchain (without its docs; with the wasm target when the host has it) under rustup, at the official image's paths and variables.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl git gcc g++ libc6-dev make pkg-config libssl-dev xz-utils \
    && rm -rf /var/lib/apt/lists/*
# The host's version (checked against the tag by xtask), e.g. 1.95.0.
ARG RUST_VERSION
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo RUST_VERSION=$RUST_VERSION \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain /usr/local/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu
COPY rustup /usr/local/cargo/bin/rustup
RUN cd /usr/local/cargo/bin \
    && for tool in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do ln rustup "$tool"; done \
    && rustup set auto-self-update disable \
    && rustup default "$RUST_VERSION-x86_64-unknown-linux-gnu" \
    && rustc --version
CMD ["bash"]
