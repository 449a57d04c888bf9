#!/usr/bin/env bash
# Installs the docker compose CLI plugin, built from its Go module, for `docker compose config` (which needs
# no engine): tests/unit/test_compose.py runs it when the plugin is there. For machines that have the docker
# CLI but no compose plugin and cannot download release binaries. Cached: does nothing when installed.
#   docker/install-compose-plugin.sh        (about 2 minutes of CPU the first time)
set -euo pipefail
VERSION=v2.40.3
MODULE=github.com/docker/compose/v2
DEST=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose

if [[ -x $DEST ]] && [[ $("$DEST" version --short 2>/dev/null) == "${VERSION#v}" ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-compose-plugin: needs Go (apt-get install golang-go)" >&2; exit 1; }
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=-mod=mod CGO_ENABLED=0
# `go install module@version` refuses modules whose go.mod has exclude directives, as compose's has:
# build inside the downloaded module instead.
source_dir=$(go mod download -json "$MODULE@$VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
mkdir -p "$(dirname "$DEST")"
(cd "$source_dir" && go build -trimpath -ldflags "-s -w -X $MODULE/internal.Version=$VERSION" -o "$DEST.tmp" ./cmd)
mv "$DEST.tmp" "$DEST"
echo "[compose] $("$DEST" version)"
