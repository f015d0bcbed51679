# Parley: `make run` serves http://127.0.0.1:8080; `make test` runs every test.
# Both install what is missing first (Debian packages with apt-get, Python test peers in .venv).
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
VENV := .venv
PARLEY := .build/release/parley
BUILD_PACKAGES := libssl-dev libsrtp2-dev pkg-config build-essential
# Janus is the SFU the benchmark compares Parley with (its adapter in `parley load` is tested too).
TEST_PACKAGES := chromium chromium-driver nodejs python3-venv iproute2 util-linux iptables janus redis-server openssl nginx coturn
RUN_ARGS ?=
MICRO_RESULTS := $(CURDIR)/.build/micro-benchmarks.md
# libsrtp2 built with OpenSSL (scripts/build-libsrtp2.sh); SwiftPM finds it through pkg-config.
SRTP_PREFIX := $(CURDIR)/.build-deps/libsrtp2
export PKG_CONFIG_PATH := $(SRTP_PREFIX)/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))

# The sanitizer builds: each in a folder of its own, with libsrtp2 built under the same sanitizer.
SANITIZER_SUPPRESSIONS := $(CURDIR)/scripts/sanitizers
# halt_on_error: the first finding fails the run. LeakSanitizer runs with AddressSanitizer.
SANITIZER_ENV_address := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1 LSAN_OPTIONS=suppressions=$(SANITIZER_SUPPRESSIONS)/lsan.supp:print_suppressions=0
SANITIZER_ENV_thread := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(SANITIZER_SUPPRESSIONS)/tsan.supp

.PHONY: run test web-test bench bench-cascade bench-large bench-outside bench-compare build deps test-deps test-packages unit-test interop-test sanitizer-test asan-test tsan-test sanitized-unit-test fuzz soak clean

run: deps build
	$(PARLEY) serve $(RUN_ARGS)

build:
	swift build -c release --product parley

test: deps test-deps
	swift build --build-tests
	swift test --skip-build
	$(MAKE) web-test
	$(MAKE) sanitizer-test
	swift build -c release --product parley
	$(MAKE) interop-test

unit-test:
	swift test

# The web client's pure modules (session state machine, recovery decisions, …) and its shell on a
# fake page, with node's own test runner: no browser, no build step.
web-test: test-packages
	node --test Web/meeting/tests/

# The unit tests again under AddressSanitizer (with LeakSanitizer) and under ThreadSanitizer.
sanitizer-test: asan-test tsan-test
asan-test: deps test-packages
	@$(MAKE) --no-print-directory sanitized-unit-test SANITIZER=address BUILD_DIR=.build-asan
tsan-test: deps test-packages
	@$(MAKE) --no-print-directory sanitized-unit-test SANITIZER=thread BUILD_DIR=.build-tsan

sanitized-unit-test:
	@bash scripts/build-libsrtp2.sh $(CURDIR)/.build-deps/libsrtp2-$(SANITIZER) $(SANITIZER)
	PKG_CONFIG_PATH=$(CURDIR)/.build-deps/libsrtp2-$(SANITIZER)/lib/pkgconfig swift build --build-tests --sanitize=$(SANITIZER) --scratch-path $(BUILD_DIR)
	$(SANITIZER_ENV_$(SANITIZER)) swift test --skip-build --sanitize=$(SANITIZER) --scratch-path $(BUILD_DIR)

# Benchmarks print numbers and write bench/RESULTS.md; they never fail on timing.
bench: deps test-deps
	swift build -c release --product parley
	swift build -c release --product parley-ceiling
	@# Micro-benchmarks (no network): a package of their own, so `make test` never builds their tooling.
	cd bench/micro && swift package --disable-sandbox benchmark --format markdown --path stdout --no-progress > $(MICRO_RESULTS)
	$(SUDO) unshare -n bash -c 'ip link set lo up && MICRO_RESULTS=$(MICRO_RESULTS) $(VENV)/bin/python bench/run.py; status=$$?; $(VENV)/bin/python bench/cascade.py && $(VENV)/bin/python bench/outside.py && exit $$status'

# Only the 200-person meeting of `make bench`, Parley and Janus, 30 s each; rewrites its section of bench/RESULTS.md.
bench-large: deps test-deps
	swift build -c release --product parley
	$(SUDO) unshare -n bash -c 'ip link set lo up && $(VENV)/bin/python bench/large.py'

# Only the outside clients part of `make bench` (aiortc against Parley and Janus); rewrites its section of bench/RESULTS.md.
bench-outside: deps test-deps
	swift build -c release --product parley
	$(SUDO) unshare -n bash -c 'ip link set lo up && $(VENV)/bin/python bench/outside.py'

# Only the cascading part of `make bench` (a meeting over workers and SFUs); rewrites its section of bench/RESULTS.md.
bench-cascade: deps test-deps
	swift build -c release --product parley
	$(SUDO) unshare -n bash -c 'ip link set lo up && $(VENV)/bin/python bench/cascade.py'

# Parley now against an older build of it (BASELINE, a git revision), in one run: packets per
# CPU-second scenario by scenario, the two builds taking turns. The baseline is built in .build-baseline/.
BASELINE ?= HEAD~1
bench-compare: deps test-deps build
	rm -rf .build-baseline/src && mkdir -p .build-baseline && git worktree prune
	git worktree add --detach .build-baseline/src $(BASELINE)
	cp Package.resolved .build-baseline/src/ 2>/dev/null || true
	cd .build-baseline/src && swift build -c release --product parley --scratch-path $(CURDIR)/.build-baseline/build
	$(SUDO) unshare -n bash -c 'ip link set lo up && BASELINE_BIN=$(CURDIR)/.build-baseline/build/release/parley $(VENV)/bin/python bench/compare.py'
	git worktree remove --force .build-baseline/src

# Media in the interop tests stays on loopback: they run in a network namespace that has only `lo`.
# The churn test runs the AddressSanitizer build of `parley` (from `make asan-test`).
interop-test:
	$(SUDO) unshare -n bash -c 'ip link set lo up && PARLEY_BIN=$(PARLEY) PARLEY_ASAN_BIN=$(CURDIR)/.build-asan/debug/parley $(VENV)/bin/pytest -v -s --timeout=300 Tests/Interop'

# Fuzzing (libFuzzer, -sanitize=fuzzer,address): each target for FUZZ_SECONDS (FUZZ_TARGETS: some only).
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

# The churn of the churn test for SOAK_MINUTES on a release build; prints memory, descriptors
# and threads over time (test-artifacts/soak.csv).
SOAK_MINUTES ?= 30
soak: deps test-deps build
	$(SUDO) unshare -n bash -c 'ip link set lo up && SOAK_MINUTES=$(SOAK_MINUTES) PARLEY_BIN=$(PARLEY) $(VENV)/bin/python scripts/soak.py'

deps:
	@$(call apt_install,$(BUILD_PACKAGES))
	@bash scripts/build-libsrtp2.sh $(SRTP_PREFIX)

test-deps: test-packages $(VENV)/.installed

test-packages:
	@$(call apt_install,$(TEST_PACKAGES))

# The venv needs python3-venv from the test packages first.
$(VENV)/.installed: Tests/Interop/requirements.txt | test-packages
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/Interop/requirements.txt
	touch $@

# Installs the Debian packages of $(1) that are missing, with one apt-get call.
define apt_install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
	echo "installing:$$missing"; \
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
fi
endef

clean:
	rm -rf .build .build-asan .build-tsan fuzz/.build $(VENV) test-artifacts
