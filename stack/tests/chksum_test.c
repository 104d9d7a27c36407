/*
 * chksum_test.c — st_chksum_sum (stack/chksum.h, lwIP's LWIP_CHKSUM here)
 * against RFC 1071's definition: big-endian 16-bit words, an odd last byte
 * padded with zero, end-around carry; compared in memory order (the bytes
 * of the sum as stored in a header). Every length 0..4100 at every offset
 * 0..7, over random, all-ones and all-zero bytes. Run by spec/chksum_spec.lua.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "chksum.h"

static unsigned short rfc1071(const unsigned char *p, int len)
{
    uint32_t sum = 0;
    for (int i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    unsigned char be[2] = {(unsigned char)(sum >> 8), (unsigned char)sum};
    unsigned short mem;
    memcpy(&mem, be, 2);
    return mem;
}

int main(void)
{
    enum { MAX = 4100, OFFS = 8 };
    static unsigned char buf[MAX + OFFS];
    int bad = 0;
    srand(1071);
    for (int fill = 0; fill < 3; fill++) {
        for (int i = 0; i < MAX + OFFS; i++)
            buf[i] = fill == 0 ? (unsigned char)rand() : fill == 1 ? 0xff : 0;
        for (int off = 0; off < OFFS; off++)
            for (int len = 0; len <= MAX; len++) {
                unsigned short want = rfc1071(buf + off, len);
                unsigned short got = st_chksum_sum(buf + off, len);
                if (got != want && bad++ < 10)
                    printf("fill %d offset %d length %d: got %04x, want %04x\n", fill, off, len,
                           got, want);
            }
    }
    if (bad) {
        printf("chksum_test: %d mismatches\n", bad);
        return 1;
    }
    printf("chksum_test: ok\n");
    return 0;
}
