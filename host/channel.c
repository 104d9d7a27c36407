/*
 * channel.c — named channels between workers.
 *
 * A channel is a multi-producer, multi-consumer rte_ring of malloc'd messages
 * (the bytes Lua encoded), found by name in a runtime-wide registry so that
 * every worker's code can open the same one. C never calls Lua: a task that
 * finds its channel empty (receive) or full (send) registers a wait on its
 * own worker, and that worker's dl_poll checks only the rings its tasks wait
 * on, handing back DL_EV_WAKE with the task's token when the ring has a
 * message (or room). No wait registered costs nothing.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ring.h>

#include "runtime.h"

typedef struct chan_msg {
    size_t len;
    char data[];
} chan_msg;

struct dl_channel {
    struct dl_channel *next;
    dl_runtime *rt;
    struct rte_ring *ring;
    int capacity;
    char name[DL_CHANNEL_NAME_LEN];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static dl_channel *registry; /* channels of the live runtime (one per process) */
static int next_ring;
static atomic_uint generation = 1;
static atomic_llong live_messages; /* allocated by send, not yet released */

dl_channel *dl_channel_open(dl_runtime *rt, const char *name, int capacity)
{
    if (!rt) {
        dl_fail("channel: no runtime: open channels from a task of a running runtime");
        return NULL;
    }
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen >= DL_CHANNEL_NAME_LEN) {
        dl_fail("channel: the name must be 1..%d bytes, got %zu", DL_CHANNEL_NAME_LEN - 1, nlen);
        return NULL;
    }
    if (capacity < 0 || capacity > DL_CHANNEL_MAX_CAPACITY) {
        dl_fail("channel '%s': capacity must be 1..%d messages (0: the default %d), got %d", name,
                DL_CHANNEL_MAX_CAPACITY, DL_CHANNEL_DEFAULT_CAPACITY, capacity);
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    dl_channel *ch;
    for (ch = registry; ch; ch = ch->next)
        if (ch->rt == rt && strcmp(ch->name, name) == 0)
            break;
    if (ch) {
        if (capacity != 0 && capacity != ch->capacity) {
            dl_fail("channel '%s' already exists with capacity %d, not %d: open it without a "
                    "capacity (or with %d), or use another name",
                    name, ch->capacity, capacity, ch->capacity);
            ch = NULL;
        }
        pthread_mutex_unlock(&registry_lock);
        return ch;
    }
    ch = calloc(1, sizeof *ch);
    if (!ch) {
        pthread_mutex_unlock(&registry_lock);
        dl_fail("channel '%s': out of memory", name);
        return NULL;
    }
    ch->rt = rt;
    ch->capacity = capacity ? capacity : DL_CHANNEL_DEFAULT_CAPACITY;
    memcpy(ch->name, name, nlen + 1);
    char rname[RTE_RING_NAMESIZE];
    snprintf(rname, sizeof rname, "dl%d_ch%d", rt->seq, next_ring++);
    /* Default flags: any worker may send and receive. */
    ch->ring = rte_ring_create(rname, (unsigned)ch->capacity, SOCKET_ID_ANY, RING_F_EXACT_SZ);
    if (!ch->ring) {
        pthread_mutex_unlock(&registry_lock);
        dl_fail("channel '%s': cannot create its ring of %d: %s", name, ch->capacity,
                rte_strerror(rte_errno));
        free(ch);
        return NULL;
    }
    ch->next = registry;
    registry = ch;
    pthread_mutex_unlock(&registry_lock);
    return ch;
}

/* Remember that a task of the calling worker waits on ch (for room when
 * send, else for a message); its dl_poll reports the token when it may retry. */
static int add_wait(dl_channel *ch, uint32_t token, bool send)
{
    dl_worker *w = dl_self();
    if (!w || w->rt != ch->rt)
        return dl_fail("channel '%s': only a task of its runtime's workers can wait on it",
                       ch->name);
    for (int i = 0; i < w->n_chan_waits; i++)
        if (w->chan_waits[i].token == token) {
            w->chan_waits[i] = (dl_chan_wait){.ch = ch, .token = token, .send = send};
            return DL_AGAIN;
        }
    if (w->n_chan_waits == w->cap_chan_waits) {
        int cap = w->cap_chan_waits ? w->cap_chan_waits * 2 : 64;
        dl_chan_wait *grown = realloc(w->chan_waits, (size_t)cap * sizeof *grown);
        if (!grown)
            return dl_fail("channel '%s': out of memory recording a wait", ch->name);
        w->chan_waits = grown;
        w->cap_chan_waits = cap;
    }
    w->chan_waits[w->n_chan_waits++] = (dl_chan_wait){.ch = ch, .token = token, .send = send};
    return DL_AGAIN;
}

int dl_channel_send(dl_channel *ch, const void *data, size_t len, uint32_t token)
{
    if (rte_ring_free_count(ch->ring) == 0)
        return token ? add_wait(ch, token, true) : DL_AGAIN;
    chan_msg *m = malloc(sizeof *m + len);
    if (!m)
        return dl_fail("channel '%s': cannot queue a message of %zu bytes: out of memory", ch->name,
                       len);
    m->len = len;
    memcpy(m->data, data, len);
    if (rte_ring_enqueue(ch->ring, m) != 0) { /* another sender took the last slot */
        free(m);
        return token ? add_wait(ch, token, true) : DL_AGAIN;
    }
    atomic_fetch_add_explicit(&live_messages, 1, memory_order_relaxed);
    return DL_OK;
}

int dl_channel_recv(dl_channel *ch, const char **data, size_t *len, uint32_t token)
{
    void *p;
    if (rte_ring_dequeue(ch->ring, &p) != 0)
        return token ? add_wait(ch, token, false) : DL_AGAIN;
    chan_msg *m = p;
    *data = m->data;
    *len = m->len;
    return DL_OK;
}

void dl_channel_release(const char *data)
{
    if (!data)
        return;
    free((char *)data - offsetof(chan_msg, data));
    atomic_fetch_sub_explicit(&live_messages, 1, memory_order_relaxed);
}

void dl_channel_cancel(uint32_t token)
{
    dl_worker *w = dl_self();
    if (!w)
        return;
    for (int i = 0; i < w->n_chan_waits; i++)
        if (w->chan_waits[i].token == token) {
            w->chan_waits[i] = w->chan_waits[--w->n_chan_waits];
            return;
        }
}

int dl_channel_count(const dl_channel *ch)
{
    return (int)rte_ring_count(ch->ring);
}

int dl_channel_capacity(const dl_channel *ch)
{
    return ch->capacity;
}

uint32_t dl_channel_generation(void)
{
    return atomic_load_explicit(&generation, memory_order_relaxed);
}

int64_t dl_channel_messages_live(void)
{
    return atomic_load_explicit(&live_messages, memory_order_relaxed);
}

int dl_channel_poll(dl_worker *w, dl_event *events, int n, int max)
{
    int kept = 0;
    for (int i = 0; i < w->n_chan_waits; i++) {
        dl_chan_wait c = w->chan_waits[i];
        bool ready = c.send ? rte_ring_free_count(c.ch->ring) > 0 : !rte_ring_empty(c.ch->ring);
        if (ready && n < max)
            events[n++] = (dl_event){.kind = DL_EV_WAKE, .token = c.token};
        else
            w->chan_waits[kept++] = c;
    }
    w->n_chan_waits = kept;
    return n;
}

void dl_channels_free(dl_runtime *rt)
{
    pthread_mutex_lock(&registry_lock);
    dl_channel **link = &registry;
    while (*link) {
        dl_channel *ch = *link;
        if (ch->rt != rt) {
            link = &ch->next;
            continue;
        }
        *link = ch->next;
        void *p;
        unsigned left = 0;
        while (rte_ring_dequeue(ch->ring, &p) == 0) {
            dl_channel_release(((chan_msg *)p)->data);
            left++;
        }
        if (left)
            DL_INFO("channel", "channel '%s': %u message(s) nobody received, freed", ch->name,
                    left);
        rte_ring_free(ch->ring);
        free(ch);
    }
    atomic_fetch_add(&generation, 1); /* Lua's handles of these channels go stale */
    pthread_mutex_unlock(&registry_lock);
}
