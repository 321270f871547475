# Sourced by build.sh, push.sh, save.sh and load.sh: the names of Kodify's images.
#
#   KODIFY_REGISTRY   where Kodify's images are named (default: kodify, i.e. local names;
#                     e.g. artifactory.mts.ai/kodify), as in .env and compose.yml
#   KODIFY_VERSION    their tag (default: the source's kodify_site/__version__, else .env)
#   DOCKER            the docker command (default: docker)
# Each comes from the environment first, then from docker/.env.

KODIFY_DOCKER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KODIFY_ROOT=$(dirname "$KODIFY_DOCKER_DIR")
DOCKER=${DOCKER:-docker}

# The value of NAME in docker/.env (the last one wins, as in compose), or nothing.
env_file_value() {
    [ -f "$KODIFY_DOCKER_DIR/.env" ] || return 0
    sed -n "s/^[[:space:]]*$1=\\(.*\\)\$/\\1/p" "$KODIFY_DOCKER_DIR/.env" | tail -n 1 | tr -d '\r'
}

source_version() {
    [ -f "$KODIFY_ROOT/kodify_site/__init__.py" ] || return 0
    sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$KODIFY_ROOT/kodify_site/__init__.py"
}

KODIFY_VERSION=${KODIFY_VERSION:-$(source_version)}
KODIFY_VERSION=${KODIFY_VERSION:-$(env_file_value KODIFY_VERSION)}
KODIFY_REGISTRY=${KODIFY_REGISTRY:-$(env_file_value KODIFY_REGISTRY)}
KODIFY_REGISTRY=${KODIFY_REGISTRY:-kodify}
KODIFY_REGISTRY=${KODIFY_REGISTRY%/}
if [ -z "$KODIFY_VERSION" ]; then
    echo "KODIFY_VERSION is not set (nor in docker/.env, nor in the sources)" >&2
    exit 2
fi

# Kodify's own images, named as compose.yml names them.
KODIFY_IMAGE=kodify
MODEL_SERVER_IMAGE=kodify-model-server
kodify_images() {
    echo "$KODIFY_REGISTRY/$KODIFY_IMAGE:$KODIFY_VERSION"
    echo "$KODIFY_REGISTRY/$MODEL_SERVER_IMAGE:$KODIFY_VERSION"
}

# The other images compose.yml runs (PostgreSQL, Redis), as NAME:TAG without a registry.
dependency_images() {
    sed -n 's/^[[:space:]]*image:[[:space:]]*\${KODIFY_DEPS_REGISTRY[^}]*}\/\([^[:space:]]*\)[[:space:]]*$/\1/p' \
        "$KODIFY_DOCKER_DIR/compose.yml" | sort -u
}
