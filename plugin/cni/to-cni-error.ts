/** Maps anything thrown inside berth to the CNI error the runtime sees: the only place codes are chosen. */

import { StoreError } from "../../store/store-error.ts";
import { IpamError, type IpamErrorKind } from "../ipam/ipam-error.ts";
import { KubeConflictError, KubeRequestError, KubeUnreachableError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import { CniError, Code } from "./cni-error.ts";

const CODE_OF: Record<IpamErrorKind, number> = {
  exhausted: Code.PoolExhausted,
  "no-pool": Code.NoCandidatePool,
  conflict: Code.AddressConflict,
  "lease-missing": Code.LeaseMissing,
  "not-found": Code.NotFound,
  "bad-annotation": Code.BadAnnotation,
  "bad-pool": Code.BadPool,
  refused: Code.Refused,
  "invalid-config": Code.InvalidConfig,
  "invalid-env": Code.InvalidEnv,
  "io-failure": Code.IoFailure,
  "not-available": Code.NotAvailable,
  "try-again": Code.TryAgainLater,
};

/** The CNI error for `err`; errors berth does not know become code 105 with their stack. */
export function toCniError(err: unknown): CniError {
  if (isKind(err, CniError)) return err;
  if (isKind(err, IpamError)) return new CniError(CODE_OF[err.kind], err.message, err.details, { cause: err });
  if (isKind(err, StoreError)) {
    // STATUS asks whether an ADD could use the database now (50); any other command could not open it (5).
    const code = err.problem === "not-ready" ? Code.NotAvailable : Code.IoFailure;
    return new CniError(code, err.message, `check ipam.dataDir ${err.dataDir} and its permissions`, { cause: err });
  }
  if (isKind(err, KubeUnreachableError)) return new CniError(Code.TryAgainLater, err.message, `API server ${err.server}`, { cause: err });
  if (isKind(err, KubeRequestError)) return new CniError(Code.Refused, `API server refused: ${err.message}`, "", { cause: err });
  if (isKind(err, KubeConflictError)) return new CniError(Code.TryAgainLater, `lost a race on the API server: ${err.message}`, "", { cause: err });
  const e = err as { code?: unknown; message?: string };
  const sqlite = typeof e?.code === "string" && e.code.startsWith("SQLITE_") ? e.code : undefined;
  if (sqlite === "SQLITE_BUSY" || sqlite === "SQLITE_LOCKED") {
    return new CniError(Code.TryAgainLater, `lease database busy: ${e.message}`, "another berth process held the write lock past the busy timeout", {
      cause: err,
    });
  }
  if (sqlite) return new CniError(Code.StoreFailure, `lease database error ${sqlite}: ${e.message}`, "", { cause: err });
  return new CniError(Code.Internal, `internal error: ${e?.message ?? String(err)}`, (err as Error)?.stack ?? "", { cause: err });
}
