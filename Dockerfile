# Starling container image: the static starling binary on an empty (scratch)
# base, run as the unprivileged numeric user 65532.
#
# Build the binary on the host first, then the image (`make image` does both):
#
#   make build
#   docker build -t starling:dev --build-arg VERSION=$(bin/starling version | cut -d' ' -f2) .
#
# The binary is built outside Docker because building inside would need a Go
# base image from a registry. It must be static (CGO_ENABLED=0), because
# scratch holds no C library. Scratch also has no shell, no CA certificates in
# /etc/ssl and no /etc/passwd; serving MQTT needs none of them.

# Stage rootfs only makes the empty /data directory: scratch has no mkdir,
# and a directory copied with --chown is owned by the runtime user, so a new
# volume mounted on /data starts out writable by that user.
FROM scratch AS rootfs
WORKDIR /data

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="starling" \
      org.opencontainers.image.description="Starling MQTT broker" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=rootfs --chown=65532:65532 /data /data
COPY bin/starling /starling

USER 65532:65532
VOLUME ["/data"]
# 1883: MQTT over TCP. 8883: MQTT over TLS, once a configuration file adds a
# tls:// listener. 8080: /metrics, /healthz and /readyz.
EXPOSE 1883 8883 8080

# The image has no shell or curl, so the binary checks its own /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["/starling", "health", "--http", "127.0.0.1:8080"]

ENTRYPOINT ["/starling"]
# A listener on 0.0.0.0 rejects clients without credentials, so add users
# (docs/deployment.md) or run `serve --config FILE` with a configuration
# that allows anonymous clients. --http on 0.0.0.0 turns the admin API off
# unless STARLING_ADMIN_TOKEN_FILE names a bearer token file.
CMD ["serve", "--listen", "tcp://0.0.0.0:1883", "--data-dir", "/data", "--http", "0.0.0.0:8080", "--log-format", "json"]
