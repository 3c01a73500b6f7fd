# The two commands of the README: `make run` and `make test`. Everything they need is installed
# by scripts/setup.sh, idempotently, from the package registries.

CARGO ?= cargo
WASM := target/wasm32-wasip1/release/libriassist_filter.wasm

.PHONY: run test setup-run setup-test build wasm lint fmt

run: setup-run
	scripts/run.sh

test: setup-test lint
	scripts/test.sh

setup-run:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test

build:
	$(CARGO) build --workspace --all-targets

wasm:
	$(CARGO) build -p libriassist-filter --target wasm32-wasip1 --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
