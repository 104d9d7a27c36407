/*
 * syncookie.c — SYN cookies for the lwIP patch stack/patches/10-syncookies.patch
 * (LWIP_HOOK_TCP_SYNCOOKIE_MAKE / _CHECK in lwipopts.h).
 *
 * When a listener's backlog is full lwIP answers a SYN with a SYN|ACK whose
 * sequence number is a cookie and keeps nothing; the final ACK returns
 * cookie + 1 and the connection is made then. A flood of SYNs that are never
 * answered (spoofed sources) thus holds at most `backlog` pcbs per listener
 * and cannot keep real clients out.
 *
 * Cookie (32 bits): bits 30-31 a 65.5 s time slot, bits 8-29 a keyed hash of
 * the 4-tuple, the peer's ISN and the slot, bits 0-7 lwIP's data byte (MSS
 * index, window scale, SACK) xored with the hash. A cookie is good for the
 * slot it was made in and the next (65-131 s), and only while this instance
 * has sent cookies in that time (no brute-forced ACKs otherwise).
 */
#include <string.h>

#include "lwip/ip_addr.h"
#include "lwip/sys.h"

#include "hooks.h"
#include "internal.h"

enum { SLOT_SHIFT = 16, HASH_MASK = 0x3FFFFF00u };

static uint32_t cookie_hash(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport,
                            u32_t peer_isn, uint32_t slot)
{
    /* a key of its own: the ISN key's hash must not also be readable in cookies */
    uint64_t h = st_mix(st_inst.isn_key ^ 0xC2B2AE3D27D4EB4FULL, slot);
    h = st_mix_addr(h, lip);
    h = st_mix_addr(h, rip);
    h = st_mix(h, (uint32_t)lport << 16 | rport);
    h = st_mix(h, peer_isn);
    h = st_mix(h, (uint32_t)(h >> 32));
    return (uint32_t)h;
}

u32_t st_hook_syncookie_make(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport,
                             u32_t peer_isn, u8_t data)
{
    u32_t now = sys_now();
    uint32_t slot = (now >> SLOT_SHIFT) & 3;
    uint32_t h = cookie_hash(lip, lport, rip, rport, peer_isn, slot);
    st_inst.cookie_last_ms = now;
    st_inst.cookies_sent++;
    return slot << 30 | (h & HASH_MASK) | ((data ^ h) & 0xFFu);
}

int st_hook_syncookie_check(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport,
                            u32_t peer_isn, u32_t cookie, u8_t *data)
{
    u32_t now = sys_now();
    if (st_inst.cookies_sent == 0 || now - st_inst.cookie_last_ms > (2u << SLOT_SHIFT))
        return 0; /* no cookie out there: a stray ACK */
    uint32_t slot = cookie >> 30, cur = (now >> SLOT_SHIFT) & 3;
    if (slot != cur && slot != ((cur - 1) & 3)) {
        st_inst.cookies_bad++;
        return 0;
    }
    uint32_t h = cookie_hash(lip, lport, rip, rport, peer_isn, slot);
    if ((cookie & HASH_MASK) != (h & HASH_MASK)) {
        st_inst.cookies_bad++;
        return 0;
    }
    *data = (u8_t)((cookie ^ h) & 0xFFu);
    st_inst.cookies_ok++;
    return 1;
}
