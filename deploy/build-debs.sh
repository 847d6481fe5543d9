#!/usr/bin/env bash
# Builds one Debian package per daemon (vrrpd, lbd, sqlproxyd, checkd) with
# cargo-deb into target/debian/ (or --output DIR) and prints their paths.
#
#   deploy/build-debs.sh                  release build (what to ship)
#   deploy/build-debs.sh --profile dev    package the debug build (CI: it has
#                                         one already; a release build takes minutes)
#   deploy/build-debs.sh --no-build       package what target/ holds for the profile
#
# Needs cargo-deb: cargo install cargo-deb --locked
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
out=target/debian
while (($#)); do
  case "$1" in
    --profile) profile=${2:?--profile needs a name}; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    --no-build) build=0; shift ;;
    --output) out=${2:?--output needs a directory}; shift 2 ;;
    --output=*) out=${1#*=}; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-debs.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-debs.sh: cargo-deb is missing; install it with: cargo install cargo-deb --locked" >&2
  exit 1
fi

daemons=(vrrpd lbd sqlproxyd checkd)
if ((build)); then
  # The whole workspace, as the test command builds it: with -p the
  # dependencies' features resolve differently and everything rebuilds.
  cargo build --locked --profile "$profile" --workspace --bins
fi

# The man pages in the packages must be the ones the binaries render.
dir=target/$([[ $profile == dev ]] && echo debug || echo "$profile")
for d in "${daemons[@]}"; do
  bin=$dir/$d
  [[ -x $bin ]] || { echo "build-debs.sh: $bin is missing (build it or drop --no-build)" >&2; exit 1; }
  if ! cmp -s <("$bin" man) deploy/man/"$d".8 || ! cmp -s <("$bin" man 5) deploy/man/"$d".yaml.5; then
    echo "build-debs.sh: deploy/man/$d.* are stale; regenerate: $bin man > deploy/man/$d.8; $bin man 5 > deploy/man/$d.yaml.5" >&2
    exit 1
  fi
done

# A debug build's packages are for tests: compress them fast. A release
# build keeps debug info (the workspace's profile.release): ship the binary
# stripped and the symbols in NAME-dbgsym_*.ddeb beside it, as Debian does.
extra=(--dbgsym)
[[ $profile == dev ]] && extra=(--fast)
mkdir -p "$out"
for d in "${daemons[@]}"; do
  # Prints the package's path.
  cargo deb --locked --no-build --profile "$profile" -p "$d" --output "$out" "${extra[@]}"
done
