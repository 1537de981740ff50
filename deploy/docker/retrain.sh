#!/bin/sh
# Train a model bundle from the mounted catalogs, verify and pack it (prodcat export),
# then publish it to the model store (PRODCAT_MODEL_STORE). Used by the compose model-init
# job and the Kubernetes retraining CronJob; installed in the image as prodcat-retrain.
#
#   prodcat-retrain [--if-empty] [--live] DATASET...
#
#   --if-empty  do nothing when the model store already holds a model (first start only)
#   --live      publish as the live version (prodcat publish --live: quality gated)
set -eu

usage() {
    echo "usage: prodcat-retrain [--if-empty] [--live] DATASET..." >&2
    exit 2
}

if_empty=0
live=""
while [ $# -gt 0 ]; do
    case "$1" in
    --if-empty) if_empty=1 ;;
    --live) live="--live" ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
    shift
done
[ $# -gt 0 ] || usage

store=${PRODCAT_MODEL_STORE:?PRODCAT_MODEL_STORE must name the model store}
if [ "$if_empty" = 1 ] && [ -n "$(ls -A "$store" 2>/dev/null)" ]; then
    echo "prodcat-retrain: model store $store is not empty: keeping it"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

for dataset in "$@"; do
    set -- "$@" --data "$dataset"
    shift
done
prodcat train "$@" --out "$work/bundles" --quiet
manifest=$(find "$work/bundles" -name manifest.json | sort | tail -n 1)
[ -n "$manifest" ] || { echo "prodcat-retrain: training wrote no bundle" >&2; exit 1; }
bundle=$(dirname "$manifest")
prodcat export "$bundle" --out "$work/bundle.tar.gz"
# shellcheck disable=SC2086 # $live is empty or one flag
prodcat publish "$bundle" $live
echo "prodcat-retrain: published $(basename "$bundle")"
