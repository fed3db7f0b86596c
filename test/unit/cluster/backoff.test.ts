/** The wait after a conflict: full jitter under a doubling ceiling, capped, never past the deadline. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffCeilingMs, backoffMs, waitAfterConflictMs } from "../../../plugin/cluster/backoff.ts";

test("the ceiling doubles from the base with each conflict in a row, up to the cap", () => {
  assert.is(backoffCeilingMs(0), 0, "no conflict, no wait");
  assert.is(backoffCeilingMs(1), BACKOFF_BASE_MS);
  assert.is(backoffCeilingMs(2), 2 * BACKOFF_BASE_MS);
  assert.is(backoffCeilingMs(3), 4 * BACKOFF_BASE_MS);
  for (let k = 1; k < 2000; k++) {
    assert.ok(backoffCeilingMs(k) <= BACKOFF_CAP_MS, `conflict ${k}`);
    assert.ok(backoffCeilingMs(k + 1) >= backoffCeilingMs(k), "never shrinks");
  }
  assert.is(backoffCeilingMs(1000), BACKOFF_CAP_MS);
  assert.ok(BACKOFF_BASE_MS >= 5 && BACKOFF_BASE_MS <= 10 && BACKOFF_CAP_MS <= 200);
});

test("a wait is anywhere from zero to the ceiling", () => {
  assert.is(
    backoffMs(3, 10_000, () => 0),
    0,
  );
  assert.is(
    backoffMs(3, 10_000, () => 0.5),
    2 * BACKOFF_BASE_MS,
  );
  assert.ok(Math.abs(backoffMs(3, 10_000, () => 0.999999) - 4 * BACKOFF_BASE_MS) < 0.001);
  for (let i = 0; i < 1000; i++) {
    const k = 1 + (i % 12);
    const ms = backoffMs(k, 10_000);
    assert.ok(ms >= 0 && ms <= backoffCeilingMs(k), `${ms} ms after ${k} conflicts`);
  }
});

test("a wait never runs past what is left of the ADD's budget", () => {
  assert.is(
    backoffMs(10, 7, () => 1),
    7,
  );
  assert.is(
    backoffMs(10, 0, () => 1),
    0,
  );
  assert.is(
    backoffMs(10, -5, () => 1),
    0,
    "a budget already spent: no wait",
  );
});

test("no wait after a random probe's conflict in a large pool; a scan's conflict waits as backoffMs says", () => {
  for (let k = 1; k < 20; k++) {
    assert.is(
      waitAfterConflictMs(k, 10_000, true, () => 1),
      0,
      `probing, conflict ${k}`,
    );
    assert.is(
      waitAfterConflictMs(k, 10_000, false, () => 1),
      backoffCeilingMs(k),
      `scanning, conflict ${k}`,
    );
  }
  assert.ok(waitAfterConflictMs(3, 10_000, false, () => 1) > 0, "a scan's conflict does wait");
});

test.run();
