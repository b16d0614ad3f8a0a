#!/usr/bin/env bash
# Build the Arclight container images and load them into the local cluster.
#   hack/images.sh [operator|trainer|postgres|all] [--no-load]
# `all` (the default) is operator and trainer, what every install runs; postgres, the chart's
# bundled ledger (ledger.bundled.enabled), is built only when named (the demo names it).
# Tags: docker.io/arclight/<image>:<contenthash> and :dev (the last build). The content hash
# covers the Dockerfile, the staged build context (sources git knows, requirements, wheel
# names, .deb files) and the base image, so a rebuild with unchanged inputs is skipped. Each
# build is saved as a docker-archive (both tags) under ~/.cache/arclight/images/ and, unless
# --no-load, imported with `hack/cluster.sh load-image ARCHIVE`.
#
# No Docker, no registry, no internet besides the Debian mirror and PyPI on a cold cache
# (CI, air-gapped sites): with a working Docker engine the script runs `docker build`;
# otherwise `buildah bud --isolation chroot` (Debian's buildah, as root). Either way the base
# is a Debian bookworm minbase made with debootstrap from the mirror configured in apt
# (hack/images/base-rootfs.sh), and pip in the build installs from a wheelhouse built on this
# host (hack/images/wheelhouse.sh) with --no-index; apt in the build installs .deb files
# downloaded on this host (hack/images/debs.sh). Once ~/.cache/arclight is filled, builds need
# no network at all; copy that directory to an air-gapped builder to build there.
#   ARCLIGHT_BUILDER=docker|buildah   force a builder
#   ARCLIGHT_STORAGE_DRIVER=overlay|vfs   buildah storage driver (default: overlay if the kernel has it)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}"
IMAGES_CACHE="$CACHE/images"
KEEP_ARCHIVES=2

log() { echo "images: $*" >&2; }
usage() { echo "usage: hack/images.sh [operator|trainer|postgres|all] [--no-load]" >&2; exit 2; }

targets=() load=1
for arg in "$@"; do
  case "$arg" in
    operator|trainer|postgres) targets+=("$arg") ;;
    all) targets+=(operator trainer) ;;
    --no-load) load=0 ;;
    *) usage ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(operator trainer)

# Source roots (as in the repository) staged into each image's context.
sources() {
  case "$1" in
    operator) echo pyproject.toml operator controllers ;;
    trainer)  echo pyproject.toml operator controllers trainer-image/arclight_trainer ;;
    postgres) echo hack/images/postgres ;;
  esac
}
dockerfile() {
  case "$1" in
    operator) echo operator/Dockerfile ;;
    trainer)  echo trainer-image/Dockerfile ;;
    postgres) echo hack/images/postgres/Dockerfile ;;
  esac
}

pick_builder() {
  if [ -n "${ARCLIGHT_BUILDER:-}" ]; then echo "$ARCLIGHT_BUILDER"
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker
  elif command -v buildah >/dev/null; then echo buildah
  else log "neither a working Docker engine nor buildah (apt-get install buildah skopeo)"; exit 1
  fi
}
builder="$(pick_builder)"
driver="${ARCLIGHT_STORAGE_DRIVER:-$(grep -qw overlay /proc/filesystems && echo overlay || echo vfs)}"
bah() { buildah --storage-driver "$driver" "$@"; }
# skopeo reaches buildah's store through an explicit containers-storage reference.
store_ref() { echo "containers-storage:[$driver@/var/lib/containers/storage+/run/containers/storage]$1"; }
if [ "$builder" = buildah ]; then
  [ "$(id -u)" = 0 ] || { log "buildah builds need root here (chroot isolation)"; exit 1; }
  command -v skopeo >/dev/null || { log "skopeo missing (apt-get install skopeo)"; exit 1; }
  export BUILDAH_ISOLATION=chroot
fi

has_image() {
  case "$builder" in
    docker)  docker image inspect "$1" >/dev/null 2>&1 ;;
    buildah) bah inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

# Imports the debootstrap rootfs as localhost/arclight/base:<rootfs name> (once) and prints the name.
base_image() {
  local tarball tag c
  tarball="$(bash hack/images/base-rootfs.sh)"
  tag="localhost/arclight/base:$(basename "$tarball" .tar)"
  has_image "$tag" && { echo "$tag"; return; }
  log "importing $tarball as $tag"
  case "$builder" in
    docker)
      docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null ;;
    buildah)
      c="$(bah from scratch)"
      bah add "$c" "$tarball" / >/dev/null
      bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd /bin/bash "$c"
      bah commit --quiet "$c" "$tag" >/dev/null
      bah rm "$c" >/dev/null ;;
  esac
  echo "$tag"
}

# Stages the build context of image $1 under $IMAGES_CACHE/context/ (the repository layout:
# the source files git knows, plus wheels/ (Python images) or debs/ (postgres) and, for the
# trainer, python3.12/) and prints it.
stage_context() {
  local image="$1" ctx="$IMAGES_CACHE/context/$1" packages into
  case "$image" in
    postgres) packages="$(bash hack/images/debs.sh "$image")" into=debs ;;
    *)        packages="$(bash hack/images/wheelhouse.sh "$image")" into=wheels ;;
  esac
  rm -rf "$ctx"; mkdir -p "$ctx"
  # shellcheck disable=SC2046  # the roots are fixed words
  git ls-files -z --cached --others --exclude-standard -- $(sources "$image") \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 --no-run-if-empty cp --parents -t "$ctx"
  cp .dockerignore "$ctx/"
  cp -al "$packages" "$ctx/$into"
  [ "$image" != trainer ] || cp -al "$(bash hack/images/python312.sh)" "$ctx/python3.12"
  echo "$ctx"
}

# Hash of everything that makes the image: base, Dockerfile, context files (wheels by name and size).
content_hash() {
  local ctx="$1" file="$2" base="$3"
  {
    echo "$base"
    sha256sum < "$file"
    (cd "$ctx" && find . -type f ! -name '*.whl' -print0 | sort -z | xargs -0 sha256sum)
    (cd "$ctx" && find . -type f -name '*.whl' -printf '%p %s\n' | sort)
  } | sha256sum | cut -c1-12
}

build() {
  local ctx="$1" file="$2" base="$3" name="$4" tag="$5" archive="$6"
  case "$builder" in
    docker)
      docker build --build-arg "BASE_IMAGE=$base" -f "$file" -t "$name:$tag" -t "$name:dev" "$ctx" >&2
      docker save -o "$archive.tmp" "$name:$tag" "$name:dev" ;;
    buildah)
      bah bud --layers --build-arg "BASE_IMAGE=$base" -f "$file" -t "$name:$tag" -t "$name:dev" "$ctx" >&2
      rm -f "$archive.tmp"
      skopeo copy --quiet "$(store_ref "$name:$tag")" "docker-archive:$archive.tmp:$name:$tag" \
        --additional-tag "$name:dev" >&2 ;;
  esac
  mv "$archive.tmp" "$archive"
}

# Points :dev at the given build in the local store (when that build is still there).
retag_dev() {
  has_image "$1:$2" || return 0
  case "$builder" in docker) docker tag "$1:$2" "$1:dev" ;; buildah) bah tag "$1:$2" "$1:dev" ;; esac
}

# Keeps the newest $KEEP_ARCHIVES archives of image $1 and drops the others' local tags.
prune() {
  local image="$1" old tag
  ls -t "$IMAGES_CACHE/$image"-*.tar 2>/dev/null | tail -n +"$((KEEP_ARCHIVES + 1))" | while read -r old; do
    tag="$(basename "$old" .tar)"; tag="${tag#"$image"-}"
    rm -f "$old"
    case "$builder" in
      docker) docker rmi "docker.io/arclight/$image:$tag" >/dev/null 2>&1 || true ;;
      buildah) bah rmi "docker.io/arclight/$image:$tag" >/dev/null 2>&1 || true ;;
    esac
  done
}

if [ "$load" = 1 ] && [ ! -f hack/cluster.sh ]; then
  log "hack/cluster.sh not found: cannot load images (use --no-load)"; exit 1
fi
mkdir -p "$IMAGES_CACHE"
base="$(base_image)"
built=()
for image in "${targets[@]}"; do
  t0=$SECONDS
  name="docker.io/arclight/$image"
  ctx="$(stage_context "$image")"
  tag="$(content_hash "$ctx" "$(dockerfile "$image")" "$base")"
  archive="$IMAGES_CACHE/$image-$tag.tar"
  if [ -s "$archive" ]; then
    log "$image: inputs unchanged, reusing $archive"
    touch "$archive"
    retag_dev "$name" "$tag"
  else
    log "$image: building $name:$tag with $builder"
    build "$ctx" "$REPO/$(dockerfile "$image")" "$base" "$name" "$tag" "$archive"
    prune "$image"
  fi
  log "$image: $name:$tag ($(du -m "$archive" | cut -f1) MiB archive, $((SECONDS - t0))s)"
  if [ "$load" = 1 ]; then
    bash hack/cluster.sh load-image "$archive" >&2
    log "$image: in the cluster"
  fi
  built+=("$name:$tag" "$name:dev")
done
printf '%s\n' "${built[@]}"
