/**
 * The custom `pthscope/*` requests, typed once (docs/protocol.md). Call sites send these
 * constants and never spell a method string. The server's twin is server/pthscope/lsp/protocol.py;
 * tests/lsp/test_protocol_agrees.py checks that both name the same methods.
 *
 * This module is type-only apart from the request constants, so pure helpers may import its
 * types without pulling in `vscode`.
 */
import { RequestType } from 'vscode-languageclient';

export type PathElement = string | number;
export type GradState = 'trainable' | 'frozen' | 'not stored';
export type TensorKind = 'parameter' | 'buffer' | 'tensor' | 'ndarray';
/** "group": keys of a dict that share a dotted prefix ("model.layers"), grouped by the server. */
export type NodeKind = 'dict' | 'list' | 'tuple' | 'set' | 'object' | 'module' | 'tensor' | 'value' | 'group';
export type Risk = 'safe' | 'unknown' | 'dangerous';
export type TensorSort = 'index' | 'key' | 'numel' | 'nbytes' | 'dtype' | 'grad_state';

export interface ParamCounts {
  total: number;
  trainable: number;
  frozen: number;
  unknown: number;
}

export interface TensorJson {
  path: PathElement[];
  key: string;
  shape: number[];
  dtype: string;
  requires_grad: boolean;
  grad_state: GradState;
  kind: TensorKind;
  location: string;
  stride: number[];
  storage_offset: number;
  numel: number;
  nbytes: number;
  storage: string;
  storage_nbytes: number | null;
  shared_with: string[];
}

export interface ModuleJson {
  class: string;
  training: boolean | null;
  parameters: ParamCounts;
}

export interface NodeSummary {
  path: PathElement[];
  key: string;
  name: string;
  kind: NodeKind;
  type: string;
  value?: string;
  child_count: number;
  tensor?: TensorJson;
  module?: ModuleJson;
  parameters?: ParamCounts;
}

export interface Problem {
  kind: string;
  message: string;
  where: string;
}

export interface GlobalRef {
  name: string;
  risk: Risk;
  count: number;
}

export interface CheckpointSummary {
  tensors: number;
  modules: number;
  parameters: ParamCounts;
  requires_grad_stored: boolean;
  bytes_by_dtype: Record<string, number>;
  tensor_bytes: number;
  storage_bytes: number;
  locations: Record<string, number>;
  kinds: Record<string, number>;
  globals_by_risk: Record<Risk, number>;
}

export interface OpenParams {
  file: string;
}

export interface OpenResult {
  file: string;
  format: string;
  size: number;
  metadata: Record<string, string>;
  summary: CheckpointSummary;
  globals: GlobalRef[];
  warnings: Problem[];
  errors: Problem[];
  root: NodeSummary | null;
  children: NodeSummary[];
}

export interface ChildrenParams {
  file: string;
  path: PathElement[];
  offset?: number;
  limit?: number;
}

export interface ChildrenResult {
  children: NodeSummary[];
  total: number;
}

export interface DetailsParams {
  file: string;
  path: PathElement[];
}

export interface DetailsResult {
  node: NodeSummary;
  tied?: string[];
}

export interface SearchParams {
  file: string;
  query: string;
  limit?: number;
}

export interface SearchResult {
  matches: NodeSummary[];
  total: number;
}

export interface TensorsParams {
  file: string;
  offset?: number;
  limit?: number;
  filter?: string;
  sort?: TensorSort;
  descending?: boolean;
}

export interface TensorsResult {
  tensors: TensorJson[];
  total: number;
}

/** Statistics of one tensor's values, read on demand from its own bytes (docs/protocol.md). */
export interface StatsParams {
  file: string;
  path: PathElement[];
}

export interface TensorHistogram {
  min: number;
  max: number;
  counts: number[];
}

export interface TensorStats {
  key: string;
  dtype: string;
  shape: number[];
  numel: number;
  engine: 'torch' | 'numpy';
  sampled: boolean;
  sample_size: number;
  /** The rest is absent for an empty tensor; min/max/mean/std are null when no value is finite. */
  min?: number | null;
  max?: number | null;
  mean?: number | null;
  std?: number | null;
  zeros?: number;
  nan?: number;
  posinf?: number;
  neginf?: number;
  histogram?: TensorHistogram;
  /** Integer and bool tensors with few distinct values: [value, count] pairs. */
  values?: [number, number][];
}

export interface StatsResult {
  stats?: TensorStats;
  error?: string;
}

/** The checkpoint the side panel shows: Python files' hovers and fixes use it too. */
export interface SetActiveCheckpointParams {
  file: string | null;
}

export interface SetActiveCheckpointResult {
  file: string | null;
}

export const open = new RequestType<OpenParams, OpenResult, void>('pthscope/open');
export const children = new RequestType<ChildrenParams, ChildrenResult, void>('pthscope/children');
export const details = new RequestType<DetailsParams, DetailsResult, void>('pthscope/details');
export const search = new RequestType<SearchParams, SearchResult, void>('pthscope/search');
export const tensors = new RequestType<TensorsParams, TensorsResult, void>('pthscope/tensors');
export const setActiveCheckpoint = new RequestType<SetActiveCheckpointParams, SetActiveCheckpointResult, void>('pthscope/setActiveCheckpoint');
export const stats = new RequestType<StatsParams, StatsResult, void>('pthscope/stats');
