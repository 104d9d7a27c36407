/*
 * fault.h — the fault injector (host/fault.c): drop, duplicate, reorder,
 * corrupt and truncate frames between a port and the stack, per worker queue
 * and direction, from a seeded generator. Off unless a device has "faults"
 * in env.json or DPDKLUA_FAULTS is set; when off the rx and tx paths pay one
 * NULL test each.
 */
#ifndef DL_FAULT_H
#define DL_FAULT_H

#include <stdint.h>

#include "runtime.h"

typedef struct dl_fault dl_fault;

/* Make w->fault_rx / fault_tx for every port that has faults (env.json, or
 * DPDKLUA_FAULTS for every port). DL_ERROR with dl_errmsg on a bad
 * DPDKLUA_FAULTS or no memory. */
int dl_fault_setup(dl_worker *w);
/* Free the states; frames still held (reordered, not yet sent) go back to
 * their pools. */
void dl_fault_teardown(dl_worker *w);
/* RX: takes the n frames of a burst (n may be 0: held frames come due);
 * *out points to at most DL_RX_BURST frames for the stack, their count
 * returned. */
uint16_t dl_fault_rx(dl_fault *f, struct rte_mbuf **in, uint16_t n, struct rte_mbuf ***out);
/* TX (the stack's tx hook, stack_port.tx_hook): takes all n frames (n may be
 * 0), sends what is due with rte_eth_tx_burst; returns n. */
uint16_t dl_fault_tx(void *f, struct rte_mbuf **pkts, uint16_t n);
/* Add the worker's fault counters to out. */
void dl_fault_stats(const dl_worker *w, dl_worker_stats *out);
/* Parse DPDKLUA_FAULTS-style text ("drop=0.01,reorder=0.02,seed=7,
 * direction=rx"); DL_ERROR with a message that names origin. */
int dl_fault_parse(const char *text, const char *origin, dl_fault_config *out);

#endif
