/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fuzzers' generator: splitmix64, whose whole state is one u64, so
 * that a seed names a run and "-n N" replays exactly its first N items.
 */
#ifndef NFT_TPROXY_FUZZ_RNG_H
#define NFT_TPROXY_FUZZ_RNG_H

#include <stdint.h>

static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* 0 .. n - 1 (0 when n is 0), from the upper half of one draw */
static inline uint32_t fuzz_below(uint64_t *s, uint32_t n)
{
	return ((splitmix64(s) >> 32) * n) >> 32;
}

#endif
