/** What the admin client answers, and the error it throws for a status the caller did not expect. */

export interface ApiResult<T = any> {
  status: number;
  body: T;
}

/** A response with an unexpected status. */
export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    const why = typeof body === "string" ? body : ((body as { message?: string })?.message ?? JSON.stringify(body));
    super(`${method} ${path}: ${status} ${String(why).slice(0, 500)}`);
  }
}
