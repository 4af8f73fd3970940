/**
 * Contracts of the worker-side scheduler (filters -> scores -> pick), shared by the framework, the
 * plugins, the prefix index and the pipeline. Reference: docs/reference/kthena-behaviour.md §3.
 *
 * Everything a decision reads comes from shared memory (endpoint slots, prefix index) or from the
 * compiled snapshot; nothing here is created per request except what must outlive the decision
 * (the prefix hashes that the post-schedule hook inserts once the response succeeded).
 */
import type { SchedulerIR } from '../../src/ir/types.js';

/** One candidate endpoint as compiled from the snapshot (a subset of CompiledEndpoint). */
export interface SchedEndpoint {
  /** Endpoint slot in the shared endpoint region. */
  readonly slot: number;
  /** kEpGen of the slot for this pod (prefix-index entries made for another pod never match). */
  readonly gen: number;
  readonly podName: string;
  readonly namespace: string;
  readonly ip: string;
  /** Pod start, unix seconds (0 = unknown). */
  readonly startedAtSec: number;
}

/** What the scheduler needs to know about one request. Built once per request by the pipeline. */
export interface ScheduleRequest {
  /** The model the client asked for (Kthena's ctx.Model: the route's modelName or a LoRA adapter). */
  model: string;
  /**
   * The name the engine serves (ModelServer spec.model, or the LoRA adapter): what the engine
   * tokenizes under and what its runtime writes KV-block keys under. Empty = same as `model`.
   */
  engineModel?: string;
  /** Id of `model` in the snapshot's modelIds (bit number in the endpoint model bit sets); -1 = none. */
  modelId: number;
  /** Prompt string as Kthena builds it (text prompt, or ChatML rendering of messages). */
  prompt: string;
  /** The parsed request body (kvcache-aware sends `messages` to /tokenize as Kthena does). */
  body: Record<string, unknown>;
  /** Engine of the target ModelServer (kvcache-aware picks the tokenizer port by engine). */
  engine: 'vLLM' | 'SGLang';
}

export type { SchedulerIR };
