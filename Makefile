# Makefile - builds everything under $(BUILD) (build/, or build-san/ with SAN=1).
#
#   make            build the library, binaries (build/bin/), tests and benchmarks
#   make run        build, then the main job (see README.md)
#   make test       build, then the whole test suite; SAN=1 runs it under ASan+UBSan
#   make bench      benchmarks (bench/RESULTS.md says what they measure)
#   make fuzz       coverage-guided fuzzing of the wire decoder (clang, libFuzzer)
#   make screenshots  docs/screenshots/*.png of the labeling and status pages, from a live run
#
# Missing libraries are installed by deploy/install-deps.sh (as root) the first
# time make runs; pkg-config then finds them.

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O3
endif

PKGS := openblas libzmq libprotobuf-c sqlite3 inih cmocka libmicrohttpd libsodium ompi-c
TOOLS := protoc-c mpicc mpirun node npm chromium sbatch slurmctld slurmd munged
DEPS_OK := $(shell pkg-config --exists $(PKGS) && for t in $(TOOLS); do command -v $$t >/dev/null || exit 1; done && echo yes)
ifneq ($(DEPS_OK),yes)
$(info make: build dependencies missing; running deploy/install-deps.sh)
DEPS_RC := $(shell ./deploy/install-deps.sh 1>&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error deploy/install-deps.sh failed (exit $(DEPS_RC)); run it as root, then make again)
endif
endif

CC := gcc
LIB_PKGS := openblas libzmq libprotobuf-c sqlite3 inih libmicrohttpd libsodium
CFLAGS := -std=c11 -Wall -Wextra -Werror -g $(OPT) -D_GNU_SOURCE -Iinclude -I$(BUILD)/gen \
          $(shell pkg-config --cflags $(LIB_PKGS)) $(SANFLAGS)
LDFLAGS := $(SANFLAGS)
LDLIBS := $(shell pkg-config --libs $(LIB_PKGS)) -lmujoco -lpthread -lm
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c)
MPI_LIBS := $(shell pkg-config --libs ompi-c)
TEST_LIBS := $(shell pkg-config --libs cmocka)

GEN := $(BUILD)/gen/rlhf.pb-c.c $(BUILD)/gen/rlhf.pb-c.h
CORE_SRC := $(wildcard core/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/rlhf.pb-c.o
LIB := $(BUILD)/librlhf.a

BINS := $(BUILD)/bin/rlhf $(BUILD)/bin/rlhf-coordinator $(BUILD)/bin/rlhf-worker $(BUILD)/bin/rlhf-rollout
TEST_SRC := $(wildcard tests/test_*.c)
TESTS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all run test bench fuzz clean screenshots
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BINS) $(TESTS) $(BENCHES)

# Generated code: built, never committed.
$(BUILD)/gen/rlhf.pb-c.c $(BUILD)/gen/rlhf.pb-c.h: proto/rlhf.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/rlhf.proto

$(BUILD)/obj/gen/rlhf.pb-c.o: $(BUILD)/gen/rlhf.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-parameter -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/worker/%.o: worker/%.c $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/rlhf: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/*.c)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The labeling and status pages (web/) are compiled into the coordinator.
$(BUILD)/gen/web_assets.c: web/embed.sh $(wildcard web/*.html web/*.js web/*.css web/*.svg)
	@mkdir -p $(BUILD)/gen
	web/embed.sh $@ $(filter-out web/embed.sh,$^)

$(BUILD)/obj/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -c $< -o $@

$(BUILD)/bin/rlhf-coordinator: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard coordinator/*.c)) $(BUILD)/obj/gen/web_assets.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bin/rlhf-rollout: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard rollout/*.c)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bin/rlhf-worker: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard worker/*.c)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(MPI_LIBS) $(LDLIBS)

# tests/harness.c: the scaffolding every test program shares (not a test itself).
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(BUILD)/obj/tests/harness.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(TEST_LIBS) $(LDLIBS)

# The allreduce benchmark is an MPI program, sharing the learner's reduction.
$(BUILD)/obj/bench/bench_allreduce.o: bench/bench_allreduce.c $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/bench_allreduce: $(BUILD)/obj/bench/bench_allreduce.o $(BUILD)/obj/worker/mpi_dist.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(MPI_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# CartPole-v1 from teacher preferences, distributed on this machine: the
# coordinator, 2 learner ranks, 2 rollout workers, 2 scripted labelers.
run: all
	$(BUILD)/bin/rlhf run jobs/cartpole.ini --learners 2 --rollouts 2

# tests/browser/setup.sh: playwright-core for the browser test (tests/test_browser.c), once.
test: all
	tests/browser/setup.sh
	tests/run.sh $(BUILD)

# docs/screenshots/labeling.png and status.png from a live human-feedback run.
screenshots: all
	tests/browser/setup.sh
	node tests/browser/screenshots.mjs $(BUILD) docs/screenshots

bench: all
	bench/run.sh $(BUILD)

fuzz:
	tests/fuzz/run.sh

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
