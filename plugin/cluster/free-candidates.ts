/** Which free addresses of a pool to try, in order. */
import { addressAt, countAddresses, findFree } from "../ipam/ip.ts";
import type { Pool } from "../ipam/pool.ts";

/** How many random addresses a probe looks at before it falls back to a scan. */
const RANDOM_PROBES = 32;

/** A random address of the pool: where a scan starts, so that nodes racing for one pool rarely want the same address. */
export function randomStart(pool: Pool): bigint {
  return addressAt(pool.ranges, randomIndex(pool))!;
}

function randomIndex(pool: Pool): bigint {
  return BigInt(Math.floor(Math.random() * Number(countAddresses(pool.ranges))));
}

/**
 * Candidate addresses of `pool` that the hints do not know as taken. With
 * `probe`, random addresses first (a large pool is never listed up front),
 * then a scan onward from `start`. The hints are asked afresh at every step:
 * the caller marks each address it could not have, and the iterator ends once
 * the hints know every address as taken.
 */
export function* freeCandidates(pool: Pool, isTaken: (value: bigint) => boolean, start: bigint, probe: boolean): Generator<bigint> {
  for (;;) {
    let value: bigint | undefined;
    for (let i = 0; probe && i < RANDOM_PROBES && value === undefined; i++) {
      const v = addressAt(pool.ranges, randomIndex(pool))!;
      if (!isTaken(v)) value = v;
    }
    value ??= findFree(pool.ranges, start - 1n, (v) => !isTaken(v));
    if (value === undefined) return;
    yield value;
  }
}
