# A local stand-in for the official postgres:15-bookworm image, for machines that cannot reach a registry (built by
# `cargo xtask compose` when the image is missing): Debian's PostgreSQL 15 on the debian:bookworm-slim stand-in, with
# an entrypoint that honours the official image's POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB and keeps its data
# in PGDATA=/var/lib/postgresql/data. It is not the official image: no initdb scripts, no other variables.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
