#!/usr/bin/env bash
# Build (or reuse) cvtrace's collector distribution and Jaeger v2 from their Go modules,
# and print their absolute paths, one per line: the collector, then Jaeger.
#
#   deploy/build.sh          (what `make collector` runs; tests call it too)
#
# Each binary is kept in .cache/bin/ (ignored by git) beside a stamp: a hash of what it
# is built from (its module's files: go.mod, go.sum, the Go sources, release.env), the
# Go version and the build flags. A binary whose stamp matches is reused as it is, so
# the script is a no-op until a pin changes. The first build downloads the modules
# through the Go module proxy and compiles everything: several minutes on 2 cores (the
# figures are in README.md); later rebuilds reuse Go's own caches.
#
# Go's module and build caches stay where `go` keeps them by default (go env GOMODCACHE,
# GOCACHE): every clone and worktree on the machine shares them, so a fresh clone (CI's)
# re-links instead of recompiling, and the module cache's read-only files stay out of
# the repository, where `rm -rf` would trip on them.
#
# Progress goes to stderr; stdout has only the two paths.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir="$root/.cache/bin"

# Go's own installer puts it in /usr/local/go/bin, which a non-login shell (CI's) may
# not have on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    PATH=/usr/local/go/bin:$PATH
fi
if ! command -v go >/dev/null 2>&1; then
    echo "deploy/build.sh: no go command on PATH or in /usr/local/go/bin; Go 1.26 or newer builds the collector and Jaeger" >&2
    exit 1
fi

mkdir -p "$bin_dir"
# One build at a time: two test runs (or make and a test) starting together wait for
# each other here instead of building the same binary twice.
exec 9>"$bin_dir/.lock"
flock 9

# The stamp of a module: a hash over its files, the Go version and the flags.
# Usage: stamp MODULE_DIR FLAGS...
stamp() {
    local dir=$1
    shift
    {
        go version
        printf '%s\n' "$@"
        (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

# Build one binary unless its stamp matches. The new binary is written beside the old
# one and renamed over it, so a reader never sees half a file.
# Usage: build NAME MODULE_DIR PACKAGE FLAGS...
build() {
    local name=$1 dir=$2 package=$3
    shift 3
    local target="$bin_dir/$name" want
    want=$(stamp "$dir" "$package" "$@")
    if [[ -x $target && -f $target.stamp && $(<"$target.stamp") == "$want" ]]; then
        return
    fi
    echo "deploy/build.sh: building $name from ${dir#"$root"/} (the first build takes minutes)" >&2
    local started=$SECONDS
    # -mod=readonly: go.sum is the pin, a build never rewrites it. CGO_ENABLED=0 and
    # -trimpath as both projects build their releases. -buildvcs=false: the binary does
    # not depend on which commit of cvtrace it was built in.
    (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false \
        "$@" -o "$target.new" "$package")
    mv -f "$target.new" "$target"
    echo "$want" >"$target.stamp"
    echo "deploy/build.sh: built $name in $((SECONDS - started)) s" >&2
}

# The collector: stripped (-s -w), as the OpenTelemetry Collector Builder builds.
build otelcol-cvtrace "$root/deploy/collector" . "-ldflags=-s -w"

# Jaeger: with the version stamp its own Makefile sets from git, which a module build
# lacks (release.env says why these values), and its symbols, as Jaeger ships them.
# shellcheck source=jaeger/release.env
. "$root/deploy/jaeger/release.env"
pinned=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' "$root/deploy/jaeger/go.mod")
if [[ $pinned != "$JAEGER_MODULE_VERSION" ]]; then
    echo "deploy/build.sh: deploy/jaeger/go.mod pins Jaeger $pinned but release.env describes $JAEGER_MODULE_VERSION; update release.env" >&2
    exit 1
fi
version=github.com/jaegertracing/jaeger/internal/version
build jaeger "$root/deploy/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger \
    "-ldflags=-X $version.latestVersion=$JAEGER_RELEASE -X $version.commitSHA=$JAEGER_COMMIT -X $version.date=$JAEGER_COMMIT_DATE"

echo "$bin_dir/otelcol-cvtrace"
echo "$bin_dir/jaeger"
