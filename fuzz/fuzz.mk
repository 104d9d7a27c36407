# fuzz/fuzz.mk — the libFuzzer harnesses (included by the Makefile when
# SAN=fuzz: clang, ASan + UBSan, coverage for libFuzzer; objects in build-fuzz/).
#   make fuzz FUZZ_S=N   build, then run each harness for N seconds (fuzz/run.sh)
#   make fuzzers         build only (the suite replays fuzz/corpus/ with them)
# config: env.json text into dl_config_parse (host/config.c);
# frames: raw Ethernet frames into stack copy 0 (fake_dpdk.c: no EAL);
# tcp:    one accepted connection driven by fuzzed segments and calls.

FUZZ_DIR  := $(BUILD)/fuzz
FUZZ_BINS := $(FUZZERS:%=$(FUZZ_DIR)/%_fuzz)
FUZZ_CFLAGS := -std=gnu11 $(STACK_OPT) -D_GNU_SOURCE -DALLOW_EXPERIMENTAL_API -Wall -Wextra -Werror \
	-Wno-missing-field-initializers -Istack -Ihost -Ifuzz $(SAN_CFLAGS) -fsanitize=fuzzer
FUZZ_STACK_LIBS := $(shell pkg-config --libs libdpdk) -lpthread -lm

.PHONY: fuzzers
fuzzers: $(FUZZ_BINS)

$(FUZZ_DIR)/config_fuzz: fuzz/config_fuzz.c $(OBJ)/config.o $(OBJ)/log.o $(OBJ)/config_default.o
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) -o $@ $^ $(shell pkg-config --libs libcjson)

$(FUZZ_DIR)/%_fuzz: fuzz/%_fuzz.c fuzz/fake_dpdk.c fuzz/fake_dpdk.h $(STACK_DIR)/stack_inst_0.o
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -o $@ fuzz/$*_fuzz.c fuzz/fake_dpdk.c \
		$(STACK_DIR)/stack_inst_0.o $(FUZZ_STACK_LIBS)
