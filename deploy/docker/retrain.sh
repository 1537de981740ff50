#!/bin/sh
# Retrain: the catalogs plus the feedback app's labels -> a bundle, verified and packed
# (prodcat export), published to the model store (PRODCAT_MODEL_STORE), then made live
# (gated) or, after the offline gate, served as a canary. Used by the compose model-init and
# retrain jobs and the Kubernetes retraining CronJob; installed in the image as
# prodcat-retrain, and runnable by hand wherever `prodcat` is on the PATH.
#
#   prodcat-retrain [--spec FILE] [--if-empty] [--live | --canary SHARE] [--no-labels]
#                   [DATASET...]
#
#   --spec FILE  the retrain spec: KEY=VALUE lines, # comments (deploy/docker/retrain.spec
#                documents every key); flags and datasets given here win over it
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
    echo "usage: prodcat-retrain [--spec FILE] [--if-empty] [--live | --canary SHARE]" \
        "[--no-labels] [DATASET...]" >&2
    exit 2
}

die() {
    echo "prodcat-retrain: $*" >&2
    exit 2
}

# The spec's keys and their defaults (flags below override them).
DATA=""
LABELS=all          # all | since-live | none
ROLLOUT=publish     # publish | live | canary
CANARY_SHARE=0.1
HOLDOUT=""          # labelled CSV/JSONL for the gate; empty: the live bundle's test rows
MIN_FIXED=0.5
TRAIN_FLAGS=""

read_spec() {
    [ -f "$1" ] || die "spec file $1 not found"
    number=0
    while IFS= read -r line || [ -n "$line" ]; do
        number=$((number + 1))
        line=$(printf '%s' "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
        case "$line" in '' | '#'*) continue ;; esac
        key=${line%%=*}
        value=${line#*=}
        [ "$key" != "$line" ] || die "$1 line $number: expected KEY=VALUE, got '$line'"
        value=$(printf '%s' "$value" | sed 's/^"\(.*\)"$/\1/')
        case "$key" in
        DATA) DATA=$value ;;
        LABELS) LABELS=$value ;;
        ROLLOUT) ROLLOUT=$value ;;
        CANARY_SHARE) CANARY_SHARE=$value ;;
        HOLDOUT) HOLDOUT=$value ;;
        MIN_FIXED) MIN_FIXED=$value ;;
        TRAIN_FLAGS) TRAIN_FLAGS=$value ;;
        *) die "$1 line $number: unknown key $key (keys: DATA LABELS ROLLOUT CANARY_SHARE HOLDOUT MIN_FIXED TRAIN_FLAGS)" ;;
        esac
    done < "$1"
}

if_empty=0
rollout_flag=""
labels_flag=""
while [ $# -gt 0 ]; do
    case "$1" in
    --spec)
        [ $# -gt 1 ] || usage
        read_spec "$2"
        shift
        ;;
    --if-empty) if_empty=1 ;;
    --live) [ -z "$rollout_flag" ] || usage; rollout_flag=live ;;
    --canary)
        [ $# -gt 1 ] && [ -z "$rollout_flag" ] || usage
        rollout_flag=canary
        CANARY_SHARE="$2"
        shift
        ;;
    --no-labels) labels_flag=none ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
    shift
done
[ -z "$rollout_flag" ] || ROLLOUT=$rollout_flag
[ -z "$labels_flag" ] || LABELS=$labels_flag
[ $# -eq 0 ] || DATA="$*"
[ -n "$DATA" ] || usage
case "$LABELS" in all | since-live | none) ;; *) die "LABELS must be all, since-live or none, got '$LABELS'" ;; esac
case "$ROLLOUT" in publish | live | canary) ;; *) die "ROLLOUT must be publish, live or canary, got '$ROLLOUT'" ;; esac

store=${PRODCAT_MODEL_STORE:?PRODCAT_MODEL_STORE must name the model store}
if [ "$if_empty" = 1 ] && [ -n "$(find "$store" -mindepth 2 -maxdepth 2 -name manifest.json 2>/dev/null)" ]; then
    echo "prodcat-retrain: model store $store already holds a model: keeping it"
    exit 0
fi

if [ "$ROLLOUT" = canary ] && prodcat models list --json | grep -q '"role": "[^"]*canary'; then
    echo "prodcat-retrain: a canary is being judged (prodcat models list): not retraining now"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# shellcheck disable=SC2086 # DATA and TRAIN_FLAGS are word lists
set -- $TRAIN_FLAGS
for dataset in $DATA; do
    set -- "$@" --data "$dataset"
done
labels_file=""
if [ "$LABELS" != none ]; then
    # Kept in the model store: the bundle's metadata names this file, so its split can be
    # rebuilt later (prodcat heldout, the publish gate).
    mkdir -p "$store/labels"
    dump="$store/labels/labels-$(date -u +%Y%m%dT%H%M%SZ)-$$.jsonl"
    if [ "$LABELS" = since-live ]; then
        prodcat labels dump --out "$dump" --since-live
    else
        prodcat labels dump --out "$dump"
    fi
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
version=$(basename "$bundle")
prodcat export "$bundle" --out "$work/bundle.tar.gz"
if [ "$ROLLOUT" = live ]; then
    prodcat publish "$bundle" --live
else
    prodcat publish "$bundle"
fi
echo "prodcat-retrain: published $version"
if [ "$ROLLOUT" = canary ]; then
    current=$(prodcat models list --json |
        sed -n 's/.*"version": "\([^"]*\)", "role": "live.*/\1/p')
    if [ -n "$current" ]; then
        # Offline gate before any traffic: no drop on the holdout (by default the live
        # bundle's own test rows), and most of the recent corrections the live model gets
        # wrong answered right.
        holdout=$HOLDOUT
        if [ -z "$holdout" ]; then
            holdout="$work/holdout.jsonl"
            prodcat heldout "$store/$current" --out "$holdout"
        fi
        labels_args=""
        [ -z "$labels_file" ] || labels_args="--labels $labels_file"
        set +e
        # shellcheck disable=SC2086 # labels_args is empty or one flag and a path
        prodcat models gate "$version" --holdout "$holdout" --min-fixed "$MIN_FIXED" $labels_args
        passed=$?
        set -e
        if [ "$passed" != 0 ]; then
            echo "prodcat-retrain: $version refused by the offline gate: published, not served" >&2
            exit 1
        fi
    fi
    prodcat models canary "$version" --share "$CANARY_SHARE"
fi
