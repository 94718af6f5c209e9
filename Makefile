# Two commands: `make run` (the whole pipeline on the bundled MNIST sample) and `make test`.
# Both create .venv on first use; nothing else needs to be installed beforehand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeship-installed
OUT ?= artifacts/latest

.PHONY: run test test-arm64 bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/edgeship pipeline --dataset mnist-sample --model mlp --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The slim runtime on an emulated Raspberry Pi OS (arm64): prints arm64-vs-x86 agreement; 77 = qemu unavailable.
test-arm64: $(STAMP)
	@$(BIN)/python -m tools.arm64.check; rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "arm64 check SKIPPED (see the reason above)"; else exit $$rc; fi

# Benchmarks print tables and a JSON line each; timings are ratios measured in one run.
bench: $(STAMP)
	$(BIN)/python benchmarks/cross_backend.py --out artifacts/bench
	$(BIN)/python benchmarks/int8_speed.py --out artifacts/bench/int8
	$(BIN)/python benchmarks/runtime_overhead.py --bundle artifacts/bench/mlp/bundle
	$(BIN)/python benchmarks/runtime_threads.py --bundle artifacts/bench/mlp/bundle
	$(BIN)/python benchmarks/soak.py --bundle artifacts/bench/mlp/bundle
	@$(BIN)/python benchmarks/devices_scale.py --bundle artifacts/bench/mlp/bundle; rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "devices_scale SKIPPED (see the reason above)"; else exit $$rc; fi
	$(BIN)/python benchmarks/litert_compiled.py --out artifacts/bench --mlp artifacts/bench/mlp/bundle --cnn artifacts/bench/cnn/bundle
	$(BIN)/python benchmarks/litert_crosscheck.py --out artifacts/bench --mlp artifacts/bench/mlp/bundle
	$(BIN)/python benchmarks/preprocess_jpeg.py
	$(BIN)/python benchmarks/int8_rescue.py --out artifacts/bench/rescue

clean:
	rm -rf $(VENV) artifacts/*/ .pytest_cache
