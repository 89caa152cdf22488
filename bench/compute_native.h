/*
 * compute_native.h - the compute guest's loop, run on the host.
 */
#ifndef COMPUTE_NATIVE_H
#define COMPUTE_NATIVE_H

#include <stdint.h>

/* compute_loop() over a table of this process; returns the checksum. */
uint64_t compute_native(uint64_t iterations);

#endif
