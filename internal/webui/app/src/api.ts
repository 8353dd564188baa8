// The API as the page uses it: the TypeScript client (clients/typescript)
// over the Connect protocol on the page's own origin, with the caller's
// token from this tab's sessionStorage.

import { Code, ConnectError, createTauroClient, type RunEvent } from "../../../../clients/typescript/src/index";

export * from "../../../../clients/typescript/src/index";

// The token lives in sessionStorage: it goes with the tab, not the browser.
const TOKEN_KEY = "tauro-exec.token";

export const token = {
  get: (): string => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set: (t: string): void => sessionStorage.setItem(TOKEN_KEY, t),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

export const client = createTauroClient({ baseUrl: location.origin, binary: true, token: () => token.get() || undefined });

/** api is the generated client, for the calls the wrapper does not wrap. */
export const api = client.raw;

/** authProblem reports an error that a (new) token would fix. */
export function authProblem(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

/** message is an error's text as a person reads it. */
export function message(err: unknown): string {
  if (err instanceof ConnectError) return err.rawMessage || Code[err.code];
  return err instanceof Error ? err.message : String(err);
}

export type Link = "live" | "reconnecting";

// A page left open keeps trying this long across a dead connection.
const RECONNECT_FOR_MS = 10 * 60_000;

/**
 * follow hands over a run's events after `after` until the run's terminal
 * event. The client's watch reconnects after a dropped stream from the last
 * event seen, so no event is lost or seen twice. It returns when the run has
 * ended or signal aborts, and throws what reconnecting cannot mend.
 */
export async function follow(
  runId: string,
  after: bigint,
  onEvent: (ev: RunEvent) => void,
  onLink: (l: Link) => void,
  signal: AbortSignal,
): Promise<void> {
  onLink("live");
  let link: Link = "live";
  try {
    for await (const ev of client.watch(runId, {
      afterSequence: after, signal, reconnectTimeoutMs: RECONNECT_FOR_MS,
      onReconnect: () => { link = "reconnecting"; onLink(link); },
    })) {
      if (link !== "live") { link = "live"; onLink(link); }
      onEvent(ev);
    }
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
}
