// The API as the page uses it: the generated ExecService client over the
// Connect protocol on the page's own origin, with the caller's token, and
// WatchRun followed across dropped streams.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ExecService, type RunEvent } from "../../../../clients/typescript/src/gen/tauro/exec/v1/exec_pb";

export * from "../../../../clients/typescript/src/gen/tauro/exec/v1/exec_pb";
export { Code, ConnectError };

// The token lives in sessionStorage: it goes with the tab, not the browser.
const TOKEN_KEY = "tauro-exec.token";

export const token = {
  get: (): string => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set: (t: string): void => sessionStorage.setItem(TOKEN_KEY, t),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

const bearer: Interceptor = (next) => (req) => {
  const t = token.get();
  if (t) req.header.set("Authorization", `Bearer ${t}`);
  return next(req);
};

export const api = createClient(
  ExecService,
  createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true, interceptors: [bearer] }),
);

/** authProblem reports an error that a (new) token would fix. */
export function authProblem(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

/** message is an error's text as a person reads it. */
export function message(err: unknown): string {
  if (err instanceof ConnectError) return err.rawMessage || Code[err.code];
  return err instanceof Error ? err.message : String(err);
}

// Errors that a new attempt cannot mend: the stream is given up on them.
const final = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument]);

export type Link = "live" | "reconnecting";

/**
 * follow streams a run's events after `after` until the run's terminal
 * event, reconnecting with the last sequence seen when the stream drops, so
 * no event is lost or seen twice. It returns when the run has ended or
 * signal aborts, and throws an error that retrying cannot mend.
 */
export async function follow(
  runId: string,
  after: bigint,
  onEvent: (ev: RunEvent) => void,
  onLink: (l: Link) => void,
  signal: AbortSignal,
): Promise<void> {
  let wait = 500;
  for (;;) {
    try {
      onLink("live");
      for await (const res of api.watchRun({ runId, afterSequence: after }, { signal })) {
        const ev = res.event;
        if (!ev || ev.sequence <= after) continue;
        after = ev.sequence;
        wait = 500;
        onEvent(ev);
      }
      return; // the server ends the stream after the run's terminal event
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ConnectError && final.has(err.code)) throw err;
    }
    onLink("reconnecting");
    await sleep(wait, signal);
    if (signal.aborted) return;
    wait = Math.min(wait * 2, 8000);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
