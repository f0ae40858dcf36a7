# Prometheus for docker-compose where no registry is reachable: Debian's prometheus (and wget, the
# health check of docker-compose.yml, as in the official image) on the local base image. Build
# context: a folder of the .deb files the base lacks (scripts/images.sh downloads them on the host),
# so nothing here needs the network. With a registry, compose uses prom/prometheus.
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
COPY *.deb /tmp/debs/
# The package's system user, created first with a fixed id (the package's postinst keeps it).
# moment-timezone's source data (212 MB) is not what the web UI loads (moment-timezone-with-data.min.js).
RUN groupadd --system --gid 998 prometheus \
 && useradd --system --uid 998 --gid prometheus --home-dir /var/lib/prometheus --no-create-home --shell /usr/sbin/nologin prometheus \
 && dpkg -i /tmp/debs/*.deb \
 && rm -rf /tmp/debs /usr/share/javascript/moment-timezone/data /usr/share/doc/* /usr/share/man/* \
 && mkdir -p /prometheus \
 && chown prometheus:prometheus /prometheus
USER 998:998
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
