#!/bin/sh
# Train a model bundle from the mounted catalogs, verify and pack it (prodcat export),
# then publish it to the model store (PRODCAT_MODEL_STORE). Used by the compose model-init
# job and the Kubernetes retraining CronJob; installed in the image as prodcat-retrain.
#
#   prodcat-retrain [--if-empty] [--live | --canary SHARE] [--no-labels] DATASET...
#
#   --if-empty   do nothing when the model store already holds a bundle (first start only)
#   --live       publish as the live version (prodcat publish --live: quality gated)
#   --canary S   publish; if it passes the offline gate against the live version (prodcat
#                models gate: the live bundle's test rows, the recent corrections), serve the
#                share S (0..1) of the products with it; the canary controller (prodcat
#                models judge) then promotes it or stops it on the online acceptance rates.
#                Nothing is trained while another canary is being judged.
#   --no-labels  train on the catalogs only; by default the newest label per product from
#                the category.labels topic (prodcat labels dump) is added, newer labels win
set -eu

usage() {
    echo "usage: prodcat-retrain [--if-empty] [--live | --canary SHARE] [--no-labels] DATASET..." >&2
    exit 2
}

if_empty=0
live=""
canary=""
labels=1
while [ $# -gt 0 ]; do
    case "$1" in
    --if-empty) if_empty=1 ;;
    --live) live="--live" ;;
    --no-labels) labels=0 ;;
    --canary)
        [ $# -gt 1 ] || usage
        canary="$2"
        shift
        ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
    shift
done
[ $# -gt 0 ] || usage
[ -z "$live" ] || [ -z "$canary" ] || usage

store=${PRODCAT_MODEL_STORE:?PRODCAT_MODEL_STORE must name the model store}
if [ "$if_empty" = 1 ] && [ -n "$(find "$store" -mindepth 2 -maxdepth 2 -name manifest.json 2>/dev/null)" ]; then
    echo "prodcat-retrain: model store $store already holds a model: keeping it"
    exit 0
fi

if [ -n "$canary" ] && prodcat models list --json | grep -q '"role": "[^"]*canary'; then
    echo "prodcat-retrain: a canary is being judged (prodcat models list): not retraining now"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

for dataset in "$@"; do
    set -- "$@" --data "$dataset"
    shift
done
labels_file=""
if [ "$labels" = 1 ]; then
    # Kept in the model store: the bundle's metadata names this file, so its split can be
    # rebuilt later (prodcat heldout, the publish gate).
    mkdir -p "$store/labels"
    dump="$store/labels/labels-$(date -u +%Y%m%dT%H%M%SZ)-$$.jsonl"
    prodcat labels dump --out "$dump"
    if [ -s "$dump" ]; then
        echo "prodcat-retrain: $(wc -l < "$dump") labels from the feedback app ($dump)"
        set -- "$@" --labels "$dump"
        labels_file=$dump
    else
        echo "prodcat-retrain: no labels from the feedback app yet"
        rm -f "$dump"
    fi
fi
prodcat train "$@" --out "$work/bundles" --quiet
manifest=$(find "$work/bundles" -name manifest.json | sort | tail -n 1)
[ -n "$manifest" ] || { echo "prodcat-retrain: training wrote no bundle" >&2; exit 1; }
bundle=$(dirname "$manifest")
prodcat export "$bundle" --out "$work/bundle.tar.gz"
# shellcheck disable=SC2086 # $live is empty or one flag
prodcat publish "$bundle" $live
echo "prodcat-retrain: published $(basename "$bundle")"
if [ -n "$canary" ]; then
    version=$(basename "$bundle")
    current=$(prodcat models list --json |
        sed -n 's/.*"version": "\([^"]*\)", "role": "live.*/\1/p')
    if [ -n "$current" ]; then
        # Offline gate before any traffic: no drop on the live bundle's own test rows, and
        # most of the recent corrections the live model gets wrong answered right.
        prodcat heldout "$store/$current" --out "$work/holdout.jsonl"
        if [ -n "$labels_file" ]; then
            prodcat models gate "$version" --holdout "$work/holdout.jsonl" --labels "$labels_file"
        else
            prodcat models gate "$version" --holdout "$work/holdout.jsonl"
        fi || {
            echo "prodcat-retrain: $version refused by the offline gate: published, not served" >&2
            exit 1
        }
    fi
    prodcat models canary "$version" --share "$canary"
fi
