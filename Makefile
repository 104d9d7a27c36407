# dpdklua — build, test and run.
#   make            build ./dpdklua
#   make test       install what is missing, build, run the busted suite (via sudo when not root),
#                   then the suite again on ./dpdklua-asan (make asan; ASAN_SPECS= limits it)
#                   and a FUZZ_SMOKE_S-second run of each fuzz harness (CI runs this)
#   make demo       install what is missing, build, run examples/http.lua on the embedded
#                   default config (net_tap) and curl it through the tap
#   make run        run examples/http.lua in the foreground (Ctrl-C stops it)
#   make install    install dpdklua, dpdklua-setup and the Lua modules under PREFIX
#                   (BINDIR, LUADIR and DESTDIR too); make uninstall removes them
#                   (luarocks --lua-version=5.1 make does the same into a rocks tree)
#   make asan       ./dpdklua-asan and build-asan/stack/ring_link with AddressSanitizer +
#                   UndefinedBehaviorSanitizer (clang; objects in build-asan/, the normal
#                   build untouched); run the suite on it with
#                   DPDKLUA=./dpdklua-asan bash scripts/test.sh
#   make fuzz       build the libFuzzer harnesses of fuzz/ (build-fuzz/) and run each for
#                   FUZZ_S seconds (default 60)
#   make bench      the benchmarks and their anchors, one table (QUICK=1: a smoke run;
#                   bench/run.lua, docs/performance.md)
#   make clean

PREFIX      ?= /usr/local
# luarocks passes BINDIR and LUADIR (its rock directory); the interpreter finds
# its modules relative to itself (bin/../share/lua/5.1), so either layout works.
BINDIR      ?= $(PREFIX)/bin
LUADIR      ?= $(PREFIX)/share/lua/5.1
MAX_WORKERS ?= 16
# SAN=asan / SAN=fuzz select a sanitizer build (make asan / make fuzz set it):
# its own build directory and executable name, so ./dpdklua stays as it is.
SAN         ?=
BUILD       := build
EXE         := dpdklua
ifeq ($(SAN),asan)
BUILD       := build-asan
EXE         := dpdklua-asan
else ifeq ($(SAN),fuzz)
BUILD       := build-fuzz
EXE         := dpdklua-fuzz
else ifneq ($(SAN),)
$(error SAN=$(SAN): expected asan or fuzz)
endif
OBJ         := $(BUILD)/obj
VERSION     := 0.1.0

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

PKGS := libdpdk luajit libcjson
CC ?= cc
CFLAGS ?= -O2 -g
ifneq ($(SAN),)
# clang for both: libFuzzer is clang's, and one compiler keeps the two
# sanitizer builds alike. -O1 and frame pointers give exact stack traces.
# -fno-sanitize-recover: an undefined-behaviour report ends the process like
# an ASan one (scripts/test.sh also fails the run on any report file).
CC         := clang
CFLAGS     := -O1 -g
STACK_OPT  := -O1 -g
SAN_CFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -fsanitize-address-use-odr-indicator \
              -fno-omit-frame-pointer -Wno-unknown-warning-option
ifeq ($(SAN),fuzz)
SAN_CFLAGS += -fsanitize=fuzzer-no-link
endif
endif
# Truncating snprintf into fixed buffers is deliberate (names, messages).
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -MMD -MP -D_GNU_SOURCE -DALLOW_EXPERIMENTAL_API \
          -Wno-format-truncation \
          -DDL_VERSION='"$(VERSION)"' -DDL_LUA_DIR='"$(LUADIR)"' -Ihost -Istack $(SAN_CFLAGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# -E: export the host's functions so that LuaJIT's ffi.C finds them.
LDFLAGS += -Wl,-E $(SAN_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lpthread -lm -ldl

HOST_SRC := $(wildcard host/*.c)
HOST_OBJ := $(HOST_SRC:host/%.c=$(OBJ)/%.o) $(OBJ)/config_default.o

.PHONY: all deps test demo run install uninstall clean format cdef asan fuzz soak
all: $(EXE)

include stack/stack.mk
include bench/bench.mk

$(EXE): $(HOST_OBJ) $(STACK_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJ)/%.o: host/%.c | $(OBJ)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

# The embedded default config: config/dpdk-env.json as a C string.
$(BUILD)/config_default.c: config/dpdk-env.json | $(OBJ)
	{ echo 'const char dl_default_config[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ';'; } > $@
$(OBJ)/config_default.o: $(BUILD)/config_default.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(OBJ):
	mkdir -p $@

deps:
	bash scripts/deps.sh

# The sanitizer pass runs ASAN_SPECS: every spec but those in ASAN_SKIP, and
# without spec/fuzz_spec.lua (#fuzz: its harnesses are sanitizer builds already
# and ran in the first pass), #bench, and #slow (fault_spec's 20 MiB transfers:
# its 4 MiB ones, with every fault kind, still run there). ASAN_SKIP would hold specs where ASan found a
# defect not fixed yet (docs/reliability.md, "Sanitizer findings"); none now.
ASAN_SKIP    ?=
ASAN_SPECS   ?= $(filter-out $(ASAN_SKIP),$(sort $(wildcard spec/*_spec.lua)))
FUZZ_SMOKE_S ?= 5
test: deps
	$(MAKE) dpdklua
	$(SUDO) bash scripts/test.sh
	$(MAKE) asan
	$(SUDO) env DPDKLUA=./dpdklua-asan bash scripts/test.sh --exclude-tags=fuzz,bench,slow $(ASAN_SPECS)
	$(MAKE) fuzz FUZZ_S=$(FUZZ_SMOKE_S)

# Mixed load for SOAK_S seconds (default 600), then health checks (scripts/soak.sh).
SOAK_S ?= 600
soak: dpdklua
	$(SUDO) env SOAK_S=$(SOAK_S) bash scripts/soak.sh

demo: deps
	$(MAKE) dpdklua
	$(SUDO) bash scripts/demo.sh

run: dpdklua
	$(SUDO) ./dpdklua examples/http.lua

# The interpreter (the embedded default config is inside it), the modules, and
# the set-up tool as dpdklua-setup. DESTDIR stages the files for a package.
install: dpdklua
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/dpdk
	install -m 755 dpdklua $(DESTDIR)$(BINDIR)/dpdklua
	install -m 755 scripts/dpdk/setup.sh $(DESTDIR)$(BINDIR)/dpdklua-setup
	install -m 644 lua/dpdk/*.lua $(DESTDIR)$(LUADIR)/dpdk/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dpdklua $(DESTDIR)$(BINDIR)/dpdklua-setup
	rm -f $(addprefix $(DESTDIR)$(LUADIR)/dpdk/,$(notdir $(wildcard lua/dpdk/*.lua)))
	-rmdir $(DESTDIR)$(LUADIR)/dpdk 2>/dev/null

format:
	clang-format -i host/*.c host/*.h stack/*.c stack/*.h stack/arch/*.h fuzz/*.c fuzz/*.h bench/*.c
	bash scripts/gen-cdef.sh

asan:
	$(MAKE) SAN=asan dpdklua-asan ring-link

FUZZERS := config frames tcp
FUZZ_S  ?= 60
fuzz:
	$(MAKE) SAN=fuzz fuzzers
	bash fuzz/run.sh $(FUZZ_S) $(FUZZERS)
ifeq ($(SAN),fuzz)
include fuzz/fuzz.mk
endif

clean:
	rm -rf $(OBJ) $(BUILD)/stack $(BUILD)/config_default.c dpdklua build-asan build-fuzz \
		dpdklua-asan

-include $(HOST_OBJ:.o=.d)

cdef:
	bash scripts/gen-cdef.sh

# The flow steering function checked without a runtime (spec/steering_spec.lua).
$(BUILD)/steer_test: host/tests/steer_test.c host/steer.c host/runtime.h
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ host/tests/steer_test.c host/steer.c $(PKG_LIBS) -lpthread

.PHONY: steer-test
steer-test: $(BUILD)/steer_test
