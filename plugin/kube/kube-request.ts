/**
 * The one way berth talks to the API server: an HTTP request carrying the
 * kubeconfig's credentials and its own deadline, and the one place where a
 * failure becomes KubeUnreachableError, KubeConflictError or KubeRequestError.
 *
 * What carries the bytes is a Wire: the direct one (direct-wire.ts: Bun's
 * native fetch in the compiled binary, node:https under Node) for a
 * kubeconfig the small reader understands, client-node's own HTTP library
 * and authentication (client-node-wire.ts) for the rest and for the
 * controller. open-transport.ts picks one; everything here is the same for both.
 */
import { KubeConflictError, KubeRequestError, KubeUnreachableError } from "./kube-errors.ts";

/** The HTTP verbs berth uses. */
export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | undefined>;

/** A connection to one API server, as named by a kubeconfig. */
export interface KubeTransport {
  /** The server URL, for messages. */
  readonly server: string;
  /**
   * Sends one request and returns the parsed JSON of a 2xx answer. Anything
   * else throws a berth error whose message starts with `what` (e.g.
   * "get pod ns/name"); a 404 is a KubeRequestError with status 404, except
   * for a PUT or PATCH of an object deleted meanwhile (KubeConflictError).
   */
  request<T>(what: string, method: Method, path: string, body?: unknown, query?: Query, contentType?: string): Promise<T>;
  /**
   * The API server's clock now (ms since the epoch), estimated from the
   * `Date` header of its answers; see ServerClock. The local clock until the
   * server has answered once.
   */
  serverNow(): number;
}

/**
 * The API server's clock as seen from here. Each answer's `Date` header D
 * (whole seconds, truncated) was written between the request's send and its
 * answer's arrival, so the server's clock minus the local one was at least
 * D - (local time at arrival). The estimate is the largest such lower bound
 * of the last minute, on the local monotonic clock: it lags the server by at
 * most a second plus a round trip, never leads it (so ages measured with it
 * are never overstated), and a step of the local wall clock does not move it.
 */
export class ServerClock {
  private offset: number | undefined;
  private offsetAt = 0;

  /** Records one answer: its Date header and the local monotonic time it arrived. */
  observe(dateHeader: string | undefined, arrivedMono: number): void {
    const d = dateHeader ? Date.parse(dateHeader) : NaN;
    if (!Number.isFinite(d)) return;
    const lower = d - arrivedMono;
    if (this.offset === undefined || lower >= this.offset || arrivedMono - this.offsetAt > 60_000) {
      this.offset = lower;
      this.offsetAt = arrivedMono;
    }
  }

  /** Whether the server has answered with a usable Date header. */
  get known(): boolean {
    return this.offset !== undefined;
  }

  /** The server's time now (ms since the epoch); the local wall clock while unknown. */
  now(): number {
    return this.offset === undefined ? Date.now() : performance.now() + this.offset;
  }
}

/**
 * Called right before a request other than GET leaves (after its
 * credentials are applied); throwing stops it unsent. `what` is the
 * request's message label, `path` its REST path.
 */
export type BeforeWrite = (what: string, method: Method, path: string) => void;

/** One request as a Wire sends it: the path is relative to the server URL. */
export interface WireRequest {
  method: Method;
  path: string;
  query?: Query;
  headers: Record<string, string>;
  body?: string;
  /**
   * The exchange's deadline, the answer's body included; it starts once the
   * credentials are applied (an exec credential plugin's run is not the API server's time).
   */
  timeoutMs: number;
}

/** An HTTP answer: its status, its Date header, its body as text. */
export interface WireAnswer {
  status: number;
  date?: string;
  text: string;
}

/** What carries requests to one API server, with the kubeconfig's credentials and TLS settings. */
export interface Wire {
  /** The server URL, without a trailing slash. */
  readonly server: string;
  /**
   * Applies the credentials, calls `beforeSend` (throwing there stops the
   * request unsent), sends, and reads the whole answer. Throws only when
   * there is no HTTP answer.
   */
  send(req: WireRequest, beforeSend: () => void): Promise<WireAnswer>;
}

/**
 * What is left of the budget of the command the requests serve (ms), read
 * before each request: a DEL bounded by timeoutSeconds gives each request at
 * most that, and sends none once it is 0.
 */
export type TimeLeft = () => number;

/**
 * The transport over `wire`: each request bounded by `requestTimeoutMs` (and
 * by `timeLeft`, when given), writes checked by `beforeWrite`.
 */
export function transportOver(wire: Wire, requestTimeoutMs: number, beforeWrite?: BeforeWrite, timeLeft?: TimeLeft): KubeTransport {
  const server = wire.server;
  const clock = new ServerClock();

  /** One exchange: status and body text; throws only when there is no HTTP answer. */
  async function exchange(
    what: string,
    method: Method,
    path: string,
    body: unknown,
    query: Query | undefined,
    contentType: string | undefined,
    timeoutMs: number,
  ) {
    const headers: Record<string, string> = { Accept: "application/json, */*;q=0.8" };
    if (body !== undefined) headers["Content-Type"] = contentType ?? "application/json";
    const beforeSend = () => {
      if (method === "GET" || !beforeWrite) return;
      try {
        beforeWrite(what, method, path);
      } catch (err) {
        throw new WriteStopped(err);
      }
    };
    // Every request carries its own deadline, the answer's body included: a hung API server must not hang the runtime.
    const sent = { method, path, query, headers, body: body === undefined ? undefined : JSON.stringify(body), timeoutMs };
    const answer = await wire.send(sent, beforeSend);
    clock.observe(answer.date, performance.now());
    return answer;
  }

  /** Whether the API server says it is ready (/readyz, else /healthz on servers without it; readable by any authenticated user). */
  async function ready(): Promise<boolean> {
    const check = async (path: string) => (await wire.send({ method: "GET", path, headers: {}, timeoutMs: 2000 }, () => {})).status;
    try {
      const status = await check("/readyz");
      if (status === 404) return [200, 404].includes(await check("/healthz")); // as client-node's Health did
      return status === 200;
    } catch {
      return false;
    }
  }

  /** Maps a non-2xx answer to berth's error kinds. */
  async function refusal(what: string, method: Method, status: number, text: string): Promise<Error> {
    const reason = reasonOf(text);
    const cause = new Error(`HTTP ${status}: ${text.slice(0, 300)}`);
    if (status === 409) return new KubeConflictError(`${what}: ${reason}`, { cause });
    // A replace or patch of an object that is gone: someone deleted it between our read and our write. That
    // is a lost race like a stale resourceVersion (callers read again and decide), not a refusal. A create
    // answered 404 is about its namespace, and a delete's 404 means "already gone": both stay as they are.
    if (status === 404 && (method === "PUT" || method === "PATCH") && namesObject(text)) {
      return new KubeConflictError(`${what}: ${reason} (deleted meanwhile)`, { cause });
    }
    // A starting API server answers 403 until its authorizer has synced: that is "try again", not RBAC.
    if (status === 403 && !(await ready())) {
      return new KubeUnreachableError(server, `${what}: API server ${server} is not ready yet (403 while starting: ${reason})`, { cause });
    }
    if (status >= 500 || status === 429) return new KubeUnreachableError(server, `${what}: API server ${server} answered ${status}: ${reason}`, { cause });
    // A 404 that names no object means the kind itself is not served: a restarting API server answers so for a
    // custom resource until it has registered the CRD again. "Not found" would be a lie there; it is "try again".
    if (status === 404 && !namesObject(text)) {
      return new KubeUnreachableError(
        server,
        `${what}: API server ${server} does not serve this kind (yet): its CRD is not installed or not registered again after a start (${reason})`,
        { cause },
      );
    }
    return new KubeRequestError(status, `${what}: ${status} ${reason}`, { cause });
  }

  return {
    server,
    serverNow: () => clock.now(),
    async request<T>(what: string, method: Method, path: string, body?: unknown, query?: Query, contentType?: string): Promise<T> {
      const left = timeLeft?.() ?? Number.POSITIVE_INFINITY;
      if (left <= 0) {
        throw new KubeUnreachableError(server, `${what}: not sent to API server ${server}: the command's time (timeoutSeconds) ran out`, { outOfTime: true });
      }
      // A request cut to what is left of the command's budget and not answered by then ran out of the command's time.
      const cut = left < requestTimeoutMs;
      const limit = cut ? Math.max(1, Math.floor(left)) : requestTimeoutMs;
      let answer: { status: number; text: string };
      try {
        answer = await exchange(what, method, path, body, query, contentType, limit);
        if (answer.status >= 200 && answer.status < 300) return (answer.text ? JSON.parse(answer.text) : undefined) as T;
      } catch (err) {
        if (err instanceof WriteStopped) throw err.cause;
        // Anything short of an HTTP status (refused, reset, TLS, credentials, no answer, bad JSON) is "unreachable".
        // The deadline is recognised by name: it is the runtime's own error, not one of berth's. node-fetch and
        // node:https say AbortError; Bun's native fetch and the signal's reason say TimeoutError.
        const e = err as Error & { code?: string; type?: string };
        const timedOut = e.name === "AbortError" || e.name === "TimeoutError" || e.type === "aborted";
        const cause = timedOut
          ? `no answer within ${limit} ms${cut ? ", the rest of the command's time (timeoutSeconds)" : ""}`
          : `${e.code ?? e.name}: ${e.message}`;
        throw new KubeUnreachableError(server, `${what}: API server ${server} unreachable (${cause})`, { cause: err, outOfTime: timedOut && cut });
      }
      throw await refusal(what, method, answer.status, answer.text);
    },
  };
}

/** BeforeWrite refused: its error goes to the caller as it is (not as "unreachable"). */
class WriteStopped {
  constructor(readonly cause: unknown) {}
}

/**
 * Whether a 404's body is a Status about one missing object (`details.name`
 * set), as opposed to "the server could not find the requested resource" or a
 * plain "404 page not found" for a kind it does not serve.
 */
export function namesObject(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as { kind?: string; details?: { name?: string } };
    return parsed?.kind === "Status" && typeof parsed.details?.name === "string" && parsed.details.name !== "";
  } catch {
    return false;
  }
}

/** The server's own reason: a Status object's message, else the start of the body. */
function reasonOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: string };
    if (parsed?.message) return parsed.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 300);
}
