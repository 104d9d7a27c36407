# Benchmarks (docs/performance.md).
#   make bench              every row, medians of BENCH_RUNS runs, one table
#   make bench QUICK=1      a smoke run of a few seconds per row
#   make bench ROWS="pingpong http"   some rows only
BENCH_BIN  := $(BUILD)/bench
BENCH_RUNS ?= 5
QUICK      ?=
ROWS       ?=

$(BENCH_BIN)/memif_pp: bench/memif_pp.c | $(OBJ)
	mkdir -p $(BENCH_BIN)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -DALLOW_EXPERIMENTAL_API $(PKG_CFLAGS) \
		-o $@ $< $(shell pkg-config --libs libdpdk)

$(BENCH_BIN)/tcp_pp: bench/tcp_pp.c | $(OBJ)
	mkdir -p $(BENCH_BIN)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -o $@ $<

$(BENCH_BIN)/memlat: bench/memlat.c | $(OBJ)
	mkdir -p $(BENCH_BIN)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -o $@ $<

.PHONY: bench bench-tools
bench-tools: $(BENCH_BIN)/memif_pp $(BENCH_BIN)/tcp_pp $(BENCH_BIN)/memlat

bench: $(EXE) bench-tools
	$(SUDO) env BENCH_RUNS=$(BENCH_RUNS) BENCH_QUICK=$(QUICK) BENCH_BIN=$(BENCH_BIN) \
		bash bench/run.sh $(ROWS)
