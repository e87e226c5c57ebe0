#!/bin/sh
# Runs `starling certs init` into ./certs next to this script. The tls://
# listener of docker-compose.yml uses two of its files, server.pem and
# server-key.pem, and clients verify the broker against certs/ca.pem. The
# certificate is valid for localhost, 127.0.0.1 and starling (the service
# name on the Compose network). To add names, set for example
# STARLING_CERT_HOSTS=localhost,127.0.0.1,starling,mqtt.example.
#
# Environment:
#   STARLING_BIN         the starling binary (default: bin/starling of the repository)
#   STARLING_CERT_HOSTS  the --hosts list of `starling certs init`
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${STARLING_BIN:-$here/../../bin/starling}
hosts=${STARLING_CERT_HOSTS:-localhost,127.0.0.1,starling}

if [ ! -x "$bin" ]; then
	echo "init-certs.sh: $bin not found: run 'make build' first, or set STARLING_BIN" >&2
	exit 1
fi

"$bin" certs init "$here/certs" --hosts "$hosts"

# The container runs as uid 65532 and reads the key through a bind mount,
# but `certs init` writes it with mode 0600 for the current user. Root can
# hand the key to uid 65532 and keep mode 0600. Any other user can only
# make the key readable by everyone on this host: acceptable for a
# development key, never for a production one.
key=$here/certs/server-key.pem
if [ "$(id -u)" -eq 0 ]; then
	chown 65532:65532 "$key"
else
	chmod 0644 "$key"
	echo "init-certs.sh: made $key readable by all users so that the container (uid 65532) can read it" >&2
fi
