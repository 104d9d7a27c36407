/*
 * config_fuzz.c — libFuzzer harness: any text as env.json into
 * dl_config_parse. Every input must end in a config or an error text, and a
 * parsed config must hold what its own limits promise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "config_fuzz: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: ASan catches a read one byte past the text. */
    char *text = malloc(size ? size : 1);
    check(text != NULL, "out of memory");
    memcpy(text, data, size);
    dl_config *cfg = dl_config_parse(text, size, "fuzz.json");
    free(text);
    if (!cfg) {
        const char *err = dl_errmsg();
        check(strncmp(err, "fuzz.json: ", 11) == 0, "an error that does not name the file");
        return 0;
    }
    check(cfg->n_cores >= 1 && cfg->n_cores <= DL_MAX_CORES, "core count out of range");
    check(cfg->n_devices >= 0 && cfg->n_devices <= DL_MAX_DEVICES, "device count out of range");
    check(cfg->n_eal_args >= 0 && cfg->n_eal_args <= DL_MAX_EAL_ARGS, "eal_args out of range");
    for (int i = 0; i < cfg->n_devices; i++) {
        const dl_device_config *d = &cfg->devices[i];
        check(d->n_addresses >= 0 && d->n_addresses <= DL_MAX_ADDRS, "address count");
        check(memchr(d->vdev, 0, sizeof d->vdev) != NULL, "vdev not terminated");
        for (int k = 0; k < d->n_addresses; k++)
            check(d->addresses[k].prefix <= (d->addresses[k].family == 4 ? 32 : 128), "prefix");
    }
    dl_config_free(cfg);
    return 0;
}
