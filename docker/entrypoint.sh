#!/bin/sh
# Entrypoint of the api and worker images: seeds the model repository on a volume's first start,
# puts pip-installed CUDA libraries on the loader path (GPU builds), then runs the command.
set -eu

# The api image carries the shipped models in $VAE_SHIPPED_MODELS; the volume mounted on
# $VAE_MODELS_DIR starts empty. Seeded once per volume (a marker remembers), so a model an admin
# deleted stays deleted. Each model is copied beside its place and renamed into it, so a replica
# starting at the same moment sees it whole or not at all, and never overwrites one.
seed_models() {
  shipped=${VAE_SHIPPED_MODELS:-}
  target=${VAE_MODELS_DIR:-}
  if [ -z "$shipped" ] || [ -z "$target" ] || [ ! -d "$shipped" ]; then
    return 0
  fi
  # An object-store repository (s3://bucket/prefix) is no directory here: the api seeds it itself.
  case "$target" in *://*) return 0 ;; esac
  mkdir -p "$target" 2>/dev/null || true
  if [ ! -w "$target" ]; then
    echo "entrypoint: $target is not writable by uid $(id -u); chown the volume to it" >&2
    exit 1
  fi
  [ -e "$target/.seeded" ] && return 0
  for model in "$shipped"/*; do
    [ -d "$model" ] || continue
    name=$(basename "$model")
    [ -e "$target/$name" ] && continue
    staging="$target/.seed-$name-$$"
    cp -R "$model" "$staging"
    if mv -T "$staging" "$target/$name" 2>/dev/null; then
      echo "entrypoint: seeded $target/$name from the image"
    else
      rm -rf "$staging"  # another replica put it there first
    fi
  done
  touch "$target/.seeded"
}

# onnxruntime-gpu[cuda,cudnn] brings CUDA and cuDNN as pip packages; its loader looks for them on
# LD_LIBRARY_PATH. (CPU images have none of these directories.)
cuda_libraries() {
  for lib in /opt/venv/lib/python3*/site-packages/nvidia/*/lib; do
    [ -d "$lib" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$lib"
  done
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
}

seed_models
cuda_libraries
exec "$@"
