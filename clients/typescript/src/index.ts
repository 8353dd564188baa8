// A small typed client of execd's ExecService for browsers and Node.
//
// It speaks the Connect protocol (or gRPC-Web) over fetch, so the same
// code runs in a browser and in Node 20+. The generated messages and
// service (./gen) are the contract; this file adds what every caller
// would otherwise write again: the bearer token, a default project,
// request ids that make a retried submit safe, and a watch that resumes
// after a dropped stream from the last event it saw, with no gap and no
// duplicate.

import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  ExecService,
  ExecutePipelineRequestSchema,
  RunState,
  type ListRunsResponse,
  type PipelineSummary,
  type Project,
  type Run,
  type RunEvent,
} from "./gen/tauro/exec/v1/exec_pb.js";

export * from "./gen/tauro/exec/v1/exec_pb.js";
export { Code, ConnectError };

export interface TauroClientOptions {
  /** execd's address as a URL, e.g. "http://127.0.0.1:50051", or the path a proxy forwards to it. */
  baseUrl: string;
  /** A bearer token (`execd token`), or a function that returns the current one. */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /** "connect" (the default) or "grpc-web". */
  protocol?: "connect" | "grpc-web";
  /** Binary protobuf on the wire instead of JSON. */
  binary?: boolean;
  /** The fetch to call; the global one by default. */
  fetch?: typeof globalThis.fetch;
  /** A transport of your own; baseUrl, protocol, binary and fetch are then ignored. */
  transport?: Transport;
  /**
   * The project that pipelines(), execute() and listRuns() name when their
   * call names none; an execd serving several projects needs one. Without
   * it, calls mean execd's only project and listRuns() lists every project.
   * Calls by run id find the run whatever its project.
   */
  project?: string;
}

export interface ExecuteOptions {
  /** The pipeline's project; the client's by default. */
  project?: string;
  /** Makes a retried submit return the first run; a random one by default. */
  requestId?: string;
  env?: string;
  /** YYYY-MM-DD. */
  startDate?: string;
  endDate?: string;
  maxWorkers?: number;
  hyperparams?: JsonObject;
  modelVersion?: string;
  /** Run only these nodes (and what they need). */
  select?: string[];
  failFast?: boolean;
  priority?: number;
  /** Fail at once instead of queueing when no run slot is free. */
  noWait?: boolean;
  /** Streaming nodes to rebuild from scratch: checkpoint and sink data deleted, sources reprocessed. */
  fullRefresh?: string[];
  /** Streaming nodes whose checkpoint to delete, keeping the sink (a Kafka source resumes where it had committed). */
  resetCheckpoint?: string[];
  signal?: AbortSignal;
}

export interface WatchOptions {
  /** Yield only events after this sequence (0, the default: from the first). */
  afterSequence?: bigint | number;
  /** Stops the watch; the iterator then throws a ConnectError with Code.Canceled. */
  signal?: AbortSignal;
  /** How long to keep reconnecting without getting an event (default 60 s). */
  reconnectTimeoutMs?: number;
  /** Told before each reconnect: the last sequence seen and why the stream ended. */
  onReconnect?: (afterSequence: bigint, cause: unknown) => void;
}

export interface ListRunsOptions {
  /** Only runs of this project; the client's by default, "" for every project the caller may view. */
  project?: string;
  pipeline?: string;
  states?: RunState[];
  pageSize?: number;
  pageToken?: string;
  signal?: AbortSignal;
}

/** The states a run does not leave (a repair starts it again). */
export function isTerminal(state: RunState): boolean {
  return (
    state === RunState.SUCCEEDED ||
    state === RunState.FAILED ||
    state === RunState.CANCELLED ||
    state === RunState.INTERRUPTED
  );
}

/** Creates a client of the execd at options.baseUrl. */
export function createTauroClient(options: TauroClientOptions): TauroClient {
  return new TauroClient(options);
}

export class TauroClient {
  /** The generated client, on the same transport, for the calls this class does not wrap. */
  readonly raw: Client<typeof ExecService>;
  /** The project calls name when they name none (TauroClientOptions.project). */
  readonly project: string | undefined;

  constructor(options: TauroClientOptions) {
    this.project = options.project;
    const interceptors: Interceptor[] = [];
    const token = options.token;
    if (token !== undefined) {
      interceptors.push((next) => async (req) => {
        const t = typeof token === "function" ? await token() : token;
        if (t) {
          req.header.set("Authorization", `Bearer ${t}`);
        }
        return next(req);
      });
    }
    const transport =
      options.transport ??
      (options.protocol === "grpc-web" ? createGrpcWebTransport : createConnectTransport)({
        baseUrl: options.baseUrl,
        useBinaryFormat: options.binary ?? false,
        fetch: options.fetch,
        interceptors,
      });
    this.raw = createClient(ExecService, transport);
  }

  /** The projects execd serves that the caller may view, by name, with each one's state and the caller's role there. */
  async listProjects(signal?: AbortSignal): Promise<Project[]> {
    return (await retryOnce(() => this.raw.listProjects({}, { signal }), signal)).projects;
  }

  /** The pipelines of project (the client's by default). */
  async pipelines(env = "", project = this.project): Promise<PipelineSummary[]> {
    return (await this.raw.listPipelines({ env, project })).pipelines;
  }

  /**
   * Starts a run of pipeline and returns it at once (QUEUED or PENDING).
   * A call that finds execd unreachable is made once more with the same
   * request id, so it never starts a second run.
   */
  async execute(pipeline: string, options: ExecuteOptions = {}): Promise<Run> {
    const req = create(ExecutePipelineRequestSchema, {
      project: options.project ?? this.project,
      pipeline,
      requestId: options.requestId ?? newRequestId(),
      env: options.env,
      startDate: options.startDate,
      endDate: options.endDate,
      maxWorkers: options.maxWorkers,
      modelVersion: options.modelVersion,
      select: options.select,
      failFast: options.failFast,
      priority: options.priority,
      noWait: options.noWait,
      fullRefresh: options.fullRefresh,
      resetCheckpoint: options.resetCheckpoint,
      hyperparams: options.hyperparams,
    });
    const resp = await retryOnce(() => this.raw.executePipeline(req, { signal: options.signal }), options.signal);
    return required(resp.run, "ExecutePipeline");
  }

  async getRun(runId: string, signal?: AbortSignal): Promise<Run> {
    const resp = await retryOnce(() => this.raw.getRun({ runId }, { signal }), signal);
    return required(resp.run, "GetRun");
  }

  /** One page of runs, newest first; pass nextPageToken back for the next. */
  async listRuns(options: ListRunsOptions = {}): Promise<ListRunsResponse> {
    const { signal, project = this.project, ...req } = options;
    return retryOnce(() => this.raw.listRuns({ ...req, project }, { signal }), signal);
  }

  /** Cancels a run; cancelling an ended run changes nothing. */
  async cancel(runId: string, reason = ""): Promise<Run> {
    const resp = await retryOnce(() => this.raw.cancelRun({ runId, reason }));
    return required(resp.run, "CancelRun");
  }

  /** Re-runs the failed and cancelled nodes of an ended run, and what depends on them. */
  async repair(runId: string, options: { requestId?: string } = {}): Promise<Run> {
    const requestId = options.requestId ?? newRequestId();
    const resp = await retryOnce(() => this.raw.repairRun({ runId, requestId }));
    return required(resp.run, "RepairRun");
  }

  /**
   * Yields the run's events after options.afterSequence, in order: those
   * stored, then live ones. When the stream drops (network, proxy, a
   * restart of execd), it reconnects after the last event it yielded, so
   * each sequence is yielded exactly once. Ends after the run's terminal
   * event. Errors execd answered with (NotFound, Unauthenticated...) are
   * thrown at once.
   */
  async *watch(runId: string, options: WatchOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
    const { signal } = options;
    const reconnectTimeoutMs = options.reconnectTimeoutMs ?? 60_000;
    let last = BigInt(options.afterSequence ?? 0);
    let downSince: number | undefined;
    let delay = firstDelayMs;
    for (;;) {
      let cause: unknown;
      try {
        for await (const resp of this.raw.watchRun({ runId, afterSequence: last }, { signal })) {
          const ev = resp.event;
          if (ev === undefined || ev.sequence <= last) {
            continue; // already yielded before a reconnect
          }
          last = ev.sequence;
          downSince = undefined;
          delay = firstDelayMs;
          yield ev;
        }
        // The server ends a stream after the run's terminal event; a stream
        // that ended sooner was cut between two events.
        const run = (await this.raw.getRun({ runId }, { signal })).run;
        if (run !== undefined && isTerminal(run.state) && last >= run.lastSequence) {
          return;
        }
        cause = new ConnectError("the stream ended before the run did", Code.Unavailable);
      } catch (err) {
        if (signal?.aborted || !transient(err)) {
          throw ConnectError.from(err);
        }
        cause = err;
        downSince ??= Date.now();
        if (Date.now() - downSince > reconnectTimeoutMs) {
          throw ConnectError.from(err);
        }
      }
      options.onReconnect?.(last, cause);
      await sleep(delay, signal);
      delay = Math.min(delay * 2, maxDelayMs);
    }
  }

  /** Follows the run to its end and returns it as it ended. */
  async wait(runId: string, signal?: AbortSignal): Promise<Run> {
    for await (const _ of this.watch(runId, { signal })) {
      // the events only move the run along
    }
    return this.getRun(runId, signal);
  }
}

const firstDelayMs = 200;
const maxDelayMs = 2_000;

/**
 * transient reports an error of the connection rather than an answer of
 * execd. execd's own errors always carry an ErrorInfo detail; a client's
 * protocol error (a stream cut in the middle of a message reads as
 * InvalidArgument "incomplete envelope") carries none.
 */
function transient(err: unknown): boolean {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.Unavailable:
    case Code.Unknown:
    case Code.Aborted:
    case Code.Internal:
    case Code.DataLoss:
    case Code.Canceled: // not by the caller's signal: by a proxy or a restart
      return true;
    case Code.InvalidArgument:
      return e.details.length === 0;
    default:
      return false;
  }
}

/** Calls fn, and once more if execd could not be reached. */
async function retryOnce<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (signal?.aborted || ConnectError.from(err).code !== Code.Unavailable) {
      throw err;
    }
    await sleep(firstDelayMs, signal);
    return fn();
  }
}

function required<T>(v: T | undefined, method: string): T {
  if (v === undefined) {
    throw new ConnectError(`${method} answered without a run`, Code.Internal);
  }
  return v;
}

function newRequestId(): string {
  return globalThis.crypto.randomUUID();
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(ConnectError.from(signal.reason, Code.Canceled));
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(ConnectError.from(signal?.reason, Code.Canceled));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
