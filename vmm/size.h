/*
 * size.h - parsing and printing byte sizes ("64M", "1G", "4096").
 */
#ifndef VMM_SIZE_H
#define VMM_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parses a size: decimal digits with an optional K, M, G or T suffix (powers
 * of 1024, case-insensitive, an optional trailing 'B' or 'iB'). Returns 0, or
 * -1 with a one-line reason in err. */
int size_parse(const char *text, uint64_t *bytes, char *err, size_t errlen);

/* Formats bytes as "64 MiB", "1.5 GiB", "12 KiB" or "100 B". */
const char *size_format(uint64_t bytes, char *buf, size_t len);

#endif
