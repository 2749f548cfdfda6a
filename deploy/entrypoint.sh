#!/bin/sh
# The image's entrypoint: prepares the Numba cache, then runs the command it is given
# (`dagster api grpc ...`, a run worker's `dagster api execute_run ...`, `dagster-daemon
# run`, `dagster-webserver ...`, `failmap doctor`, ...). It lets the container run on
# a read-only root file system: at run time everything is written below DAGSTER_HOME
# and TMPDIR, which must be writable (a volume, an emptyDir, a tmpfs).
set -eu

# Numba loads cached kernels only from a directory it can write to: it tries to create
# a file there and, when it cannot, silently uses another place and compiles everything
# again. The image's cache (built by `failmap warm`) is read-only on a read-only root
# file system, so a copy in TMPDIR takes its place, made once per container (a few MB).
if [ -n "${NUMBA_CACHE_DIR:-}" ] && [ -d "$NUMBA_CACHE_DIR" ] && [ ! -w "$NUMBA_CACHE_DIR" ]; then
    copy="${TMPDIR:-/tmp}/failmap-numba-cache"
    if [ ! -e "$copy/.complete" ]; then
        work="$(mktemp -d "${TMPDIR:-/tmp}/failmap-numba-cache.XXXXXX")"
        cp -R "$NUMBA_CACHE_DIR/." "$work/"
        touch "$work/.complete"
        # another process of this container may have made the copy meanwhile: keep its
        mv -T "$work" "$copy" 2>/dev/null || rm -rf "$work"
    fi
    NUMBA_CACHE_DIR="$copy"
    export NUMBA_CACHE_DIR
fi

exec "$@"
