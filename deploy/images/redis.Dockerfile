# Redis for docker-compose where no registry is reachable: Debian's redis-server on the local base
# image. Build context: a folder of the .deb files the base lacks (scripts/images.sh downloads them
# on the host), so nothing here needs the network. With a registry, compose uses redis:7.2-alpine.
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
COPY *.deb /tmp/debs/
# The package's system user, created first with a fixed id (the package's postinst keeps it).
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid redis --home-dir /var/lib/redis --no-create-home --shell /usr/sbin/nologin redis \
 && dpkg -i /tmp/debs/*.deb \
 && rm -rf /tmp/debs \
 && mkdir -p /data \
 && chown redis:redis /data
USER 999:999
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
