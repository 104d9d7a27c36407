# stack/stack.mk — lwIP + stack/*.c as MAX_WORKERS isolated copies.
# Included by the top Makefile, which defines BUILD, MAX_WORKERS, CC and
# PKG_CFLAGS. Defines STACK_OBJS (link them into dpdklua) and check-stack.
#
# lwIP keeps its state in globals, so each worker gets its own copy
# (docs: architecture.md, "One private lwIP per worker"):
#   1. compile lwIP and stack/*.c with -fvisibility=hidden; only the table
#      `stack_ops` (instance.c) is visible;
#   2. ld -r everything into one stack_inst.o;
#   3. objcopy --localize-hidden: every other symbol becomes local;
#   4. copy i: objcopy --redefine-sym stack_ops=stack_ops_<i>;
#   5. instances.c lists &stack_ops_0 .. &stack_ops_<MAX_WORKERS-1>.
# lwIP comes from $(LWIP_SRC) (Debian's source package, never committed). Our
# changes to it are the patch files stack/patches/*.patch (diff -u of lwIP's
# tree, applied with patch -p1 in name order); the build compiles a patched
# copy in $(BUILD)/lwip-tree, so $(LWIP_SRC) itself stays pristine and each
# build directory (normal, asan, fuzz, a worktree's) patches its own copy.

LWIP_SRC ?= build/lwip
STACK_OPT ?= -O2 -g
STACK_DIR := $(BUILD)/stack
LWIP_TREE := $(BUILD)/lwip-tree
LWIP_PATCHES := $(sort $(wildcard stack/patches/*.patch))
LWIP_STAMP := $(LWIP_TREE)/.patched

LWIP_FILES := \
	core/def.c core/inet_chksum.c core/init.c core/ip.c core/mem.c core/memp.c \
	core/netif.c core/pbuf.c core/stats.c core/tcp.c core/tcp_in.c core/tcp_out.c core/timeouts.c \
	core/ipv4/etharp.c core/ipv4/icmp.c core/ipv4/ip4.c core/ipv4/ip4_addr.c \
	core/ipv6/ethip6.c core/ipv6/icmp6.c core/ipv6/inet6.c core/ipv6/ip6.c \
	core/ipv6/ip6_addr.c core/ipv6/mld6.c core/ipv6/nd6.c \
	netif/ethernet.c
LWIP_OBJS := $(LWIP_FILES:%.c=$(STACK_DIR)/lwip/%.o)
STACK_GLUE_OBJS := $(STACK_DIR)/instance.o $(STACK_DIR)/netif_dpdk.o $(STACK_DIR)/port_io.o \
	$(STACK_DIR)/tcp_conn.o \
	$(STACK_DIR)/tcp_glue.o $(STACK_DIR)/steer_port.o $(STACK_DIR)/syncookie.o

STACK_IDS := $(shell seq 0 $$(($(MAX_WORKERS) - 1)))
STACK_OBJS := $(STACK_IDS:%=$(STACK_DIR)/stack_inst_%.o) $(STACK_DIR)/instances.o

STACK_BASE_CFLAGS := -std=gnu11 $(STACK_OPT) -MMD -MP -D_GNU_SOURCE -DALLOW_EXPERIMENTAL_API \
	-Istack -I$(LWIP_TREE)/src/include -Ihost $(SAN_CFLAGS)
# lwIP's own sources: warnings shown but not fatal (LWIP_SRC may be another
# version). nd6.c without router solicitations (lwipopts.h) leaves an unused
# parameter and variable behind.
STACK_LWIP_CFLAGS := $(STACK_BASE_CFLAGS) -fvisibility=hidden -Wall -Wextra \
	-Wno-unused-parameter -Wno-unused-variable
STACK_OWN_CFLAGS := $(STACK_BASE_CFLAGS) -fvisibility=hidden -Wall -Wextra -Werror $(PKG_CFLAGS)

STACK_HEADERS := stack/lwipopts.h stack/arch/cc.h stack/hooks.h stack/internal.h stack/port_io.h \
	stack/tcp_conn.h stack/chksum.h

$(LWIP_SRC)/src/core/init.c:
	@echo "lwIP source not found in $(LWIP_SRC): run scripts/deps.sh or set LWIP_SRC=/path/to/lwip" >&2
	@exit 1

# (A static pattern rule: a plain one would match any name, .d files too.)
# The copy is made anew (fresh mtimes, so everything that includes it rebuilds)
# whenever a patch is added, changed or removed. A patch that does not apply
# stops the build with its name.
$(LWIP_STAMP): $(LWIP_PATCHES) $(BUILD)/lwip-patches.list stack/stack.mk | $(LWIP_SRC)/src/core/init.c
	@rm -rf $(LWIP_TREE) && mkdir -p $(LWIP_TREE)
	@cp -R $(LWIP_SRC)/src $(LWIP_TREE)/src
	@for p in $(LWIP_PATCHES); do \
	  echo "lwIP: applying $$p"; \
	  patch -p1 -s -N -d $(LWIP_TREE) < $$p || \
	    { echo "lwIP patch $$p does not apply to $(LWIP_SRC) (lwIP 2.2.1 expected)" >&2; exit 1; }; \
	done
	@touch $@

$(LWIP_OBJS): $(STACK_DIR)/lwip/%.o: $(LWIP_STAMP) $(STACK_HEADERS)
	@mkdir -p $(@D)
	$(CC) $(STACK_LWIP_CFLAGS) -c -o $@ $(LWIP_TREE)/src/$*.c

$(STACK_DIR)/%.o: stack/%.c $(STACK_HEADERS) | $(LWIP_STAMP)
	@mkdir -p $(@D)
	$(CC) $(STACK_OWN_CFLAGS) -c -o $@ $<

$(STACK_DIR)/stack_inst.o: $(LWIP_OBJS) $(STACK_GLUE_OBJS)
	$(LD) -r -o $@.tmp $^
	objcopy --localize-hidden $@.tmp $@
	rm -f $@.tmp

# An AddressSanitizer build (make asan) also emits the one-definition-rule
# indicator of the exported table, a global symbol (clang names it
# `__odr_asan_gen_stack_ops`, gcc `__odr_asan.stack_ops`): without a rename of
# its own the copies collide at link time. It is renamed with the table rather
# than switched off (-fno-sanitize-address-use-odr-indicator) so that ASan still
# checks each copy's table against any other definition of its name. Without
# ASan these renames match nothing and do nothing.
$(STACK_DIR)/stack_inst_%.o: $(STACK_DIR)/stack_inst.o
	objcopy --redefine-sym stack_ops=stack_ops_$* \
		--redefine-sym __odr_asan_gen_stack_ops=__odr_asan_gen_stack_ops_$* \
		--redefine-sym __odr_asan.stack_ops=__odr_asan.stack_ops_$* $< $@

# The list of patches, rewritten only when it changes (a removed patch too
# must remake the copy).
$(BUILD)/lwip-patches.list: stack-force
	@mkdir -p $(@D)
	@echo '$(LWIP_PATCHES)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

# Rewritten only when MAX_WORKERS changes, so that a rebuild relinks.
$(STACK_DIR)/instances.c: stack-force
	@mkdir -p $(@D)
	@{ echo '/* generated by stack/stack.mk: one lwIP copy per worker slot */'; \
	   echo '#include "stack.h"'; \
	   for i in $(STACK_IDS); do echo "extern const stack_ops stack_ops_$$i;"; done; \
	   echo 'const stack_ops *const dl_stack_instances[] = {'; \
	   for i in $(STACK_IDS); do echo "    &stack_ops_$$i,"; done; \
	   echo '};'; \
	   echo 'const int dl_stack_instance_count = $(MAX_WORKERS);'; } > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(STACK_DIR)/instances.o: $(STACK_DIR)/instances.c stack/stack.h
	$(CC) -std=gnu11 $(STACK_OPT) $(SAN_CFLAGS) -Wall -Wextra -Werror -Istack -Ihost -c -o $@ $<

.PHONY: check-stack stack-force
stack-force:

# Proves the isolation: each copy exports only stack_ops_<i>, and the copies'
# lwIP state lives at distinct addresses.
check-stack: $(STACK_OBJS)
	sh stack/check-isolation.sh $(STACK_DIR) $(MAX_WORKERS)

-include $(LWIP_OBJS:.o=.d) $(STACK_GLUE_OBJS:.o=.d)

# A white-box test of two copies over a net_ring pair (jumbo MTU, multi-segment
# RX), run by spec/tcp_stack_spec.lua.
$(STACK_DIR)/ring_link: stack/tests/ring_link.c $(STACK_OBJS)
	$(CC) $(STACK_BASE_CFLAGS) -Wall -Wextra -Werror -Wno-missing-field-initializers $(PKG_CFLAGS) \
		-o $@ $< $(STACK_OBJS) $(shell pkg-config --libs libdpdk) -lrte_net_ring -lpthread -lm

.PHONY: ring-link
ring-link: $(STACK_DIR)/ring_link

# The software checksum against RFC 1071 (spec/chksum_spec.lua).
$(STACK_DIR)/chksum_test: stack/tests/chksum_test.c stack/chksum.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(STACK_OPT) -Wall -Wextra -Werror -Istack -o $@ $<

.PHONY: chksum-test
chksum-test: $(STACK_DIR)/chksum_test
