/**
 * The error of a configuration field and the checks shared by the pool
 * parsers. Kept apart from pool.ts so that pool-affinity.ts can throw it
 * without importing pool.ts back.
 */
import { brand } from "../support/errors.ts";

/** Thrown for a field that is present but wrong; `unsupported` marks an unknown field (CNI code 2). */
export class FieldError extends Error {
  static readonly brand = "FieldError";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
    readonly unsupported = false,
  ) {
    super(`${unsupported ? "unsupported field" : "invalid"} ${field}${value === undefined ? "" : ` ${JSON.stringify(value)}`}: ${reason}`);
    brand(this, FieldError.brand);
  }
}

/** `value` as a list of strings; throws FieldError naming `field` otherwise. */
export function stringList(field: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new FieldError(field, value, "must be a list of strings");
  }
  return value;
}
