/*
 * smart_scan.h - which visits of a page that does not merge are skipped
 * (Linux 6.7's smart scan, with the skips aligned to the scan count).
 *
 * A page hashed on a visit and not merged ages by one per full scan; from
 * age 3 on, most of its visits are skipped, more as it ages: it is looked
 * at only in the full scans whose number is a multiple of its period, 2
 * below age 4, 4 below age 9, then 8. A page the guest wrote, or that is
 * queued for a merge, starts again at age 0 (the caller resets it).
 *
 * Why aligned. Two identical pages meet only in the unstable table of one
 * full scan, which is emptied after each: both must be visited in the same
 * scan. Linux counts each page's skips down from its own last visit (skip
 * 1, 2, 4, then 8 visits: periods 2, 3, 5 and 9), so two pages that went
 * quiet some scans apart keep their phase difference: 15, 16, 24 or 25
 * scans apart (and more), they are never visited in the same scan, and
 * never merge. Here every period divides the next, so the scans a page of
 * any age is visited in include every multiple of 8: two pages meet within
 * 8 scans once both are old, and a young page (visited on every scan) meets
 * any other. The skipping is about Linux's: 1 of 2 visits at age 3 (Linux
 * 1 of 2), 3 of 4 up to age 8 (Linux 2 of 3, then 4 of 5), 7 of 8 after
 * (Linux 8 of 9).
 *
 * Invariant: periods are powers of two, and for ages a <= b,
 * smart_scan_period(a) divides smart_scan_period(b).
 */
#ifndef KSM_SMART_SCAN_H
#define KSM_SMART_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#define SMART_SCAN_YOUNG 3 /* ages below this are never skipped */

/* The full scans a page of this age is visited in are the multiples of this. */
static inline unsigned smart_scan_period(uint8_t age)
{
	return age < SMART_SCAN_YOUNG ? 1 : age <= 3 ? 2 : age <= 8 ? 4 : 8;
}

/* Whether this visit (in full scan number `full_scans`) to a page of age
 * *age is skipped; ages the page. */
static inline bool smart_scan_skip(uint8_t *age, uint64_t full_scans)
{
	uint8_t a = *age;
	if (a != UINT8_MAX)
		*age = (uint8_t)(a + 1);
	return (full_scans & (smart_scan_period(a) - 1)) != 0; /* periods are powers of two */
}

#endif
