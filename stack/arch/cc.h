/*
 * arch/cc.h — lwIP's compiler/platform glue for dpdklua (Linux, gcc/clang).
 *
 * The system headers provide types, errno and byte order; the PRNG, the
 * diagnostics and the assertion handler live in stack/instance.c, one per
 * copy of the stack.
 */
#ifndef DL_ARCH_CC_H
#define DL_ARCH_CC_H

#include <endian.h> /* BYTE_ORDER, before lwIP's own fallback */
#include <stdint.h>
#include <stdlib.h>

/* lwIP's errno values are the system's. */
#define LWIP_ERRNO_STDINCLUDE 1
/* lwIP must not define htons() & co. as macros: they would clash with
 * <arpa/inet.h> in files that include both. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* One bswap instruction instead of lwIP's portable shifts. */
#define lwip_htons(x) ((u16_t)__builtin_bswap16((u16_t)(x)))
#define lwip_htonl(x) ((u32_t)__builtin_bswap32((u32_t)(x)))
#endif

/* Per-instance PRNG (xorshift64*), seeded from getrandom() at init: local
 * ports and multicast report delays. Sequence numbers use the ISN hook. */
uint32_t st_lwip_rand(void);
#define LWIP_RAND() ((u32_t)st_lwip_rand())

/* Diagnostics go to the host's log; a failed assertion logs and aborts. */
void st_lwip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void st_lwip_assert(const char *msg, const char *file, int line) __attribute__((noreturn));
#define LWIP_PLATFORM_DIAG(x)                                                                      \
    do {                                                                                           \
        st_lwip_diag x;                                                                            \
    } while (0)
#define LWIP_PLATFORM_ASSERT(x) st_lwip_assert((x), __FILE__, __LINE__)

#endif
