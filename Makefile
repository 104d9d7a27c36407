# dpdklua — build, test and run.
#   make            build ./dpdklua
#   make test       install what is missing, build, run the busted suite (via sudo when not root)
#   make demo       install what is missing, build, run examples/http.lua on the embedded
#                   default config (net_tap) and curl it through the tap
#   make run        run examples/http.lua in the foreground (Ctrl-C stops it)
#   make install    install dpdklua and the Lua modules under PREFIX
#   make clean

PREFIX      ?= /usr/local
MAX_WORKERS ?= 16
BUILD       := build
OBJ         := $(BUILD)/obj
LUA_DIR     := $(PREFIX)/share/lua/5.1
VERSION     := 0.1.0

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

PKGS := libdpdk luajit libcjson
CC ?= cc
CFLAGS ?= -O2 -g
# Truncating snprintf into fixed buffers is deliberate (names, messages).
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -MMD -MP -D_GNU_SOURCE -DALLOW_EXPERIMENTAL_API \
          -Wno-format-truncation \
          -DDL_VERSION='"$(VERSION)"' -DDL_LUA_DIR='"$(LUA_DIR)"' -Ihost -Istack
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# -E: export the host's functions so that LuaJIT's ffi.C finds them.
LDFLAGS += -Wl,-E
LDLIBS  += $(PKG_LIBS) -lpthread -lm -ldl

HOST_SRC := $(wildcard host/*.c)
HOST_OBJ := $(HOST_SRC:host/%.c=$(OBJ)/%.o) $(OBJ)/config_default.o

.PHONY: all deps test demo run install clean format cdef
all: dpdklua

include stack/stack.mk

dpdklua: $(HOST_OBJ) $(STACK_OBJS)
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

test: deps
	$(MAKE) dpdklua
	$(SUDO) bash scripts/test.sh

demo: deps
	$(MAKE) dpdklua
	$(SUDO) bash scripts/demo.sh

run: dpdklua
	$(SUDO) ./dpdklua examples/http.lua

install: dpdklua
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LUA_DIR)/dpdk
	install -m 755 dpdklua $(DESTDIR)$(PREFIX)/bin/dpdklua
	install -m 644 lua/dpdk/*.lua $(DESTDIR)$(LUA_DIR)/dpdk/

format:
	clang-format -i host/*.c host/*.h stack/*.c stack/*.h stack/arch/*.h
	bash scripts/gen-cdef.sh

clean:
	rm -rf $(OBJ) $(BUILD)/stack $(BUILD)/config_default.c dpdklua

-include $(HOST_OBJ:.o=.d)

cdef:
	bash scripts/gen-cdef.sh

# The flow steering function checked without a runtime (spec/steering_spec.lua).
$(BUILD)/steer_test: host/tests/steer_test.c host/steer.c host/runtime.h
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ host/tests/steer_test.c host/steer.c $(PKG_LIBS) -lpthread

.PHONY: steer-test
steer-test: $(BUILD)/steer_test
