# Sourced by deploy/local/test and deploy/local/demo: make sure .venv exists with
# '.[train,dev]' installed and the local stack is up. Idempotent and quiet when
# everything is already in place.
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_DIR"

ensure_venv() {
    if [[ -x .venv/bin/prodcat ]]; then
        return 0
    fi
    local py=""
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            py=$(command -v "$candidate")
            break
        fi
    done
    if [[ -z $py ]]; then
        echo "prodcat needs Python >= 3.11 (Debian: apt-get install -y python3 python3-venv)" >&2
        return 1
    fi
    echo "creating .venv with $py and installing prodcat[train,dev] (first run only)..." >&2
    "$py" -m venv .venv
    .venv/bin/python -m pip install -q -e '.[train,dev]'
}

ensure_stack() {
    # Tests and demo use the services named by PRODCAT_KAFKA_BOOTSTRAP / PRODCAT_REDIS_URL
    # when both are set; otherwise the local stack.
    if [[ -n ${PRODCAT_KAFKA_BOOTSTRAP:-} && -n ${PRODCAT_REDIS_URL:-} && -z ${PRODCAT_USE_LOCAL_STACK:-} ]]; then
        return 0
    fi
    deploy/local/stack up >&2
}
