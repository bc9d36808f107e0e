/**
 * The custom `pthscope/*` requests, typed once (docs/protocol.md): methods, params, results and
 * the payload shapes. Call sites send these constants and never spell a method string. The
 * server's twin is server/pthscope/lsp/protocol.py (with the reader's JSON shapes it reuses);
 * tests/lsp/test_protocol_agrees.py checks both field by field: names, JSON types, and which
 * fields are optional. Names match the Python TypedDicts (`TensorJson`, `SummaryJson`, ...).
 *
 * This module is type-only apart from the request constants, so pure helpers may import its
 * types without pulling in `vscode`.
 */
import { RequestType } from 'vscode-languageclient';

export type PathElement = string | number;
export type GradState = 'trainable' | 'frozen' | 'not stored';
/** How a tensor was saved: an nn.Parameter, in a module's `_buffers`, a plain tensor, a numpy array. */
export type TensorKind = 'parameter' | 'buffer' | 'tensor' | 'ndarray';
/** What a tensor is for, decided by the server from the file's structure (docs/json-contract.md). */
export type Role = 'parameter' | 'buffer' | 'optimizer_state' | 'other';
/** "group": keys of a dict that share a dotted prefix ("model.layers"), grouped by the server. */
export type NodeKind = 'dict' | 'list' | 'tuple' | 'set' | 'object' | 'module' | 'tensor' | 'value' | 'group';
export type Risk = 'safe' | 'unknown' | 'dangerous';
export type SavedAs = 'module' | 'state_dict';
export type TensorSort = 'index' | 'key' | 'shape' | 'numel' | 'nbytes' | 'dtype' | 'grad_state' | 'role' | 'kind' | 'location';
/** The actions of the `pthscope.insertRequiresGradCode` command. */
export type RequiresGradAction = 'freezeAllExcept' | 'freezeModule' | 'unfreezeModule' | 'unfreezeAll' | 'printParameters';
/** Where freezing code goes when an optimizer over the model was built before that line ("check": ask). */
export type Placement = 'check' | 'here' | 'beforeOptimizer';
export type SnippetAction = 'save_state_dict' | 'save_training_checkpoint' | 'load_state_dict' | 'load_training_checkpoint';

/** Model-parameter elements in the older shape (modules, `summary.parameters`). */
export interface ParamCountsJson {
  total: number;
  trainable: number;
  frozen: number;
  unknown: number;
}

export interface RoleCountsJson {
  tensors: number;
  elements: number;
  bytes: number;
}

/** Model parameters, with their elements by requires_grad state (`not_stored`: a state_dict). */
export interface ParameterCountsJson extends RoleCountsJson {
  trainable: number;
  frozen: number;
  not_stored: number;
}

/** Tensors, elements and bytes by role; the server counts, the client shows. */
export interface RoleTableJson {
  parameter: ParameterCountsJson;
  buffer: RoleCountsJson;
  optimizer_state: RoleCountsJson;
  other: RoleCountsJson;
}

/** One file of a checkpoint made of several (a shard, a `.distcp` file, one rank's file). */
export interface PartJson {
  file: string;
  format: string;
  size: number;
  tensors: number;
}

/** The set a single file is one part of: opening `file` shows the whole. */
export interface PartOfJson {
  file: string;
  format: string;
  part: number;
  parts: number;
}

/** A piece of a distributed tensor: where it sits in the global tensor and which file holds it. */
export interface ChunkJson {
  offsets: number[];
  sizes: number[];
  part: number | null;
  rank: number | null;
  byte_offset: number | null;
  byte_length: number | null;
}

/** How a distributed tensor is split (DTensor, ShardedTensor, a DCP entry); `local`: `shape` is one rank's piece. */
export interface ShardingJson {
  kind: string;
  global_shape: number[];
  local: boolean;
  placements: string[];
  mesh: string;
  rank: number | null;
  chunks: ChunkJson[];
}

export interface TensorJson {
  path: PathElement[];
  key: string;
  shape: number[];
  dtype: string;
  requires_grad: boolean;
  grad_state: GradState;
  kind: TensorKind;
  role: Role;
  location: string;
  stride: number[];
  storage_offset: number;
  numel: number;
  nbytes: number;
  storage: string;
  storage_nbytes: number | null;
  shared_with: string[];
  layout: string;
  /** Index into OpenResult.parts of the file holding its bytes; null: the checkpoint's own file. */
  part: number | null;
  sharding: ShardingJson | null;
}

export interface ModuleJson {
  path: PathElement[];
  key: string;
  class: string;
  training: boolean | null;
  parameters: ParamCountsJson;
}

/** Where a model's state sits in the file (a whole module, or a state_dict). */
export interface ModelJson {
  path: PathElement[];
  key: string;
  saved_as: SavedAs;
  ema: boolean;
  prefix: string;
}

export interface NodeSummary {
  path: PathElement[];
  key: string;
  name: string;
  kind: NodeKind;
  type: string;
  child_count: number;
  value?: string;
  tensor?: TensorJson;
  module?: ModuleJson;
  /** Containers, modules and groups: the tensors of their subtree, by role. */
  counts?: RoleTableJson;
  /** What the file's last scan found here (a tensor's findings, or its subtree's bad tensors). */
  scan?: ScanMark;
}

export type Severity = 'error' | 'warning';

/** A tree node or table row the last scan marked; the client shows `label` as it is. */
export interface ScanMark {
  severity: Severity;
  label: string;
  tensors: number;
}

export interface ProblemJson {
  kind: string;
  message: string;
  where: string;
}

/** How the pickles use a global; a `safe` one has only `referenced` and `written`. */
export interface GlobalUsesJson {
  referenced: number;
  written: number;
  called?: number;
  arguments?: number[];
  rebuilt?: number;
  state?: number;
  planted?: string[];
}

export interface GlobalJson {
  name: string;
  risk: Risk;
  count: number;
  uses: GlobalUsesJson;
  /** One sentence: what torch.load(weights_only=False) would do with it ("" when nothing to say). */
  effect: string;
  /** Named only by pickles the loader does not read (a torch zip's extra pickle): a crafted file. */
  unread: boolean;
}

export interface SummaryJson {
  tensors: number;
  modules: number;
  roles: RoleTableJson;
  parameters: ParamCountsJson;
  requires_grad_stored: boolean;
  bytes_by_dtype: Record<string, number>;
  tensor_bytes: number;
  storage_bytes: number;
  locations: Record<string, number>;
  kinds: Record<string, number>;
  globals_by_risk: Record<string, number>;
}

/** What loads a file's pickles, and whether its weights_only=True restricts them to torch's allow-list. */
export interface LoaderJson {
  call: string;
  weights_only: boolean;
  own_types_only: boolean;
  /** Why weights_only=True refuses the file whatever its globals (an opcode its unpickler cannot run); "" when it does not. */
  weights_only_refuses: string;
  /** Why the loader refuses the file before unpickling anything, whatever it is told (its pickles then run nothing); "" when it does not. */
  refuses: string;
}

export interface OpenParams {
  file: string;
  /** That many rows of the tensor table in file order come with the result (`first_tensors`). */
  firstTensors?: number;
}

export interface OpenResult {
  file: string;
  format: string;
  size: number;
  metadata: Record<string, string>;
  summary: SummaryJson;
  models: ModelJson[];
  globals: GlobalJson[];
  loader: LoaderJson;
  warnings: ProblemJson[];
  errors: ProblemJson[];
  root: NodeSummary | null;
  children: NodeSummary[];
  parts: PartJson[];
  part_of: PartOfJson | null;
  /** The file's last scan, while the file is unchanged. */
  scan?: ScanSummary;
  /** Top-level modules of the file's classes that the server's Python cannot import and no workspace folder holds. */
  unimportable: string[];
  /** The banner's one-line verdict (server/pthscope/reader/safety.py); null: nothing to say. */
  safety: SafetyJson | null;
  /** The table's first rows, when `firstTensors` asked for them. */
  first_tensors?: TensorPage;
}

export interface SafetyJson {
  /** Red only for `dangerous`. */
  level: 'dangerous' | 'unknown' | 'safe';
  headline: string;
}

export interface ChildrenParams {
  file: string;
  path?: PathElement[];
  offset?: number;
  limit?: number;
}

export interface ChildrenResult {
  children: NodeSummary[];
  total: number;
}

export interface DetailsParams {
  file: string;
  path?: PathElement[];
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
  /** A tensor whose row in this filter and order the result's `row` gives (the page reveals it). */
  rowOf?: PathElement[] | null;
}

/** A page of the tensor table. */
export interface TensorPage {
  tensors: TensorJson[];
  total: number;
  /** By key: the rows of this page the last scan marked. */
  marks?: Record<string, ScanMark>;
}

export interface TensorsResult extends TensorPage {
  /** Where the `rowOf` tensor is in this filter and order; absent when it is not in it. */
  row?: number;
}

/** The way from the root to a node, for a tree that loads children page by page. */
export interface RevealParams {
  file: string;
  path?: PathElement[];
}

/** One node on that way, and its index among its parent's children. */
export interface RevealStep {
  node: NodeSummary;
  index: number;
}

export interface RevealResult {
  /** From the root's child to the node itself; empty for the root. */
  steps: RevealStep[];
}

/** Which Python runs the server: no params. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface EnvironmentParams {
}

export interface EnvironmentResult {
  python: string;
  executable: string;
  prefix: string;
  /** What computes tensor values: their versions, null when that Python cannot import them. */
  torch: string | null;
  numpy: string | null;
}

/** Statistics of one tensor's values, read on demand from its own bytes (docs/protocol.md). */
export interface StatsParams {
  file: string;
  path?: PathElement[];
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
  l2?: number | null;
  abs_max?: number | null;
  mean_abs?: number | null;
  /** Complex tensors: the statistics are of |x|. */
  magnitude?: boolean;
  /** The first values, row-major (all of a small tensor), as text: "0.1", "-3", "True", "nan", "inf". */
  first_values?: string[];
}

export interface StatsResult {
  stats?: TensorStats;
  error?: string;
}

export type ScanFindingKind = 'nan' | 'inf' | 'all_zero' | 'extreme' | 'fp16_overflow';

export interface ScanFinding {
  kind: ScanFindingKind;
  severity: Severity;
  message: string;
}

export interface ScanTensorStats {
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  abs_max: number | null;
  zeros: number;
  nan: number;
  posinf: number;
  neginf: number;
}

/** A tensor the scan found bad (the rules are the server's: docs/protocol.md). */
export interface ScanTensor {
  key: string;
  path: PathElement[];
  aliases: string[];
  dtype: string;
  shape: number[];
  role: Role;
  severity: Severity;
  findings: ScanFinding[];
  stats: ScanTensorStats;
}

export interface KeyMessage {
  key: string;
  message: string;
}

export interface ScanThresholds {
  extreme_ratio: number;
  float16_max: number;
}

export interface ScanCounts {
  nan: number;
  inf: number;
  all_zero: number;
  extreme: number;
  fp16_overflow: number;
}

export interface ScanSummary {
  complete: boolean;
  total: number;
  scanned: number;
  counts: ScanCounts;
  bad: number;
  errors: number;
  warnings: number;
  unreadable: number;
}

export interface ScanParams {
  file: string;
}

export interface ScanResult {
  file: string;
  /** false: cancelled; what was found so far. */
  complete: boolean;
  total: number;
  scanned: number;
  elements: number;
  bytes: number;
  seconds: number;
  counts: ScanCounts;
  bad: ScanTensor[];
  unreadable: KeyMessage[];
  thresholds: ScanThresholds;
}

export interface ModuleStatsParams {
  file: string;
  path?: PathElement[];
}

/** All the floating-point (else integer) tensors of a subtree, taken together. */
export interface ModuleStats {
  key: string;
  tensors: number;
  numel: number;
  dtypes: Record<string, number>;
  left_out: number;
  failed: KeyMessage[];
  zeros: number;
  nan: number;
  posinf: number;
  neginf: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  l2: number | null;
  abs_max: number | null;
  mean_abs?: number | null;
  histogram?: TensorHistogram;
  values?: [number, number][];
}

export interface ModuleStatsResult {
  stats?: ModuleStats;
  error?: string;
}

export interface DiffParams {
  a: string;
  b: string;
  values?: boolean;
  partialResultToken?: number | string | null;
}

export interface DiffSide {
  file: string;
  format: string;
  tensors: number;
  models: string[];
  errors: string[];
}

export interface DiffSummary {
  matched: number;
  only_a: number;
  only_b: number;
  shape_changed: number;
  dtype_changed: number;
  grad_changed: number;
  identical: number;
  changed: number;
  value_errors: number;
  compared: number;
  comparable: number;
}

export type DiffStatus = 'only_a' | 'only_b' | 'shape' | 'dtype' | 'matched' | 'identical' | 'changed' | 'error';
export type ModuleDiffStatus = 'only_a' | 'only_b' | 'structure' | 'changed' | 'identical' | 'matched';

/** How B's values differ from A's (Δ = B − A). */
export interface DiffValues {
  identical: boolean;
  numel: number;
  changed: number;
  nonfinite: number;
  max_abs_diff: number | null;
  l2_diff: number | null;
  l2_a: number | null;
  rel_change: number | null;
}

export interface DiffTensor {
  name: string;
  module: string;
  status: DiffStatus;
  key_a: string | null;
  key_b: string | null;
  role: Role;
  shape_a: number[] | null;
  shape_b: number[] | null;
  dtype_a: string | null;
  dtype_b: string | null;
  requires_grad_a: boolean | null;
  requires_grad_b: boolean | null;
  grad_changed: boolean;
  values: DiffValues | null;
  value_error: string | null;
  note: string | null;
}

export interface DiffModule {
  module: string;
  status: ModuleDiffStatus;
  tensors: number;
  only_a: number;
  only_b: number;
  shape_changed: number;
  dtype_changed: number;
  grad_changed: number;
  identical: number;
  changed: number;
  not_compared: number;
  max_abs_diff: number | null;
  max_rel_change: number | null;
}

/** A `$/progress` value on a diff's partialResultToken: the rows just compared. */
export interface DiffProgressValue {
  tensors: DiffTensor[];
  done: number;
  total: number;
}

export interface DiffResult {
  a: DiffSide;
  b: DiffSide;
  values: boolean;
  complete: boolean;
  stripped: string[];
  notes: string[];
  summary: DiffSummary;
  modules: DiffModule[];
  tensors: DiffTensor[];
}

export interface ConvertParams {
  file: string;
  out: string;
  all?: boolean;
}

export interface DroppedValue {
  key: string;
  what: string;
}

export interface ConvertSummary {
  out: string;
  tensors: number;
  bytes: number;
  aliases: Record<string, string>;
  left_out: Record<string, number>;
  dropped: DroppedValue[];
  dropped_count: number;
  model_only: boolean;
}

export interface ConvertResult {
  written?: ConvertSummary;
  error?: string;
}

/** The checkpoint the side panel shows: Python files' hovers and fixes use it too. */
export interface SetActiveCheckpointParams {
  file: string | null;
}

export interface SetActiveCheckpointResult {
  file: string | null;
}

/** Arguments of the `pthscope.insertRequiresGradCode` command (`workspace/executeCommand`). */
export interface InsertRequiresGradCodeArgs {
  uri: string;
  line: number;
  action: RequiresGradAction;
  module?: string | null;
  modules?: string[] | null;
  placement?: Placement;
}

export interface InsertRequiresGradCodeResult {
  applied: boolean;
  message: string;
  /** With placement "check": the (0-based) line of the optimizer the code would come after. */
  optimizer_line: number | null;
}

/** Arguments of `pthscope.listModules`: the model in scope at `line` of document `version`. */
export interface ListModulesArgs {
  uri: string;
  line: number;
  version?: number | null;
}

export interface ModuleChoice {
  key: string;
  label: string;
  description: string;
}

export interface ModuleAction {
  action: RequiresGradAction;
  label: string;
  detail: string;
}

export interface ListModulesResult {
  var: string | null;
  title: string;
  modules: ModuleChoice[];
  actions: ModuleAction[];
  message: string;
}

/** Arguments of `pthscope.snippetEdit`: a save/load snippet for `var` at `line`. */
export interface SnippetEditArgs {
  uri: string;
  line: number;
  action: SnippetAction;
  var: string;
  version?: number | null;
}

/** The range to replace (0-based, UTF-16) and the snippet; `snippet` is '' when not applicable. */
export interface SnippetEditResult {
  version: number | null;
  line: number;
  character: number;
  end_line: number;
  end_character: number;
  snippet: string;
  message: string;
}

export const open = new RequestType<OpenParams, OpenResult, void>('pthscope/open');
export const children = new RequestType<ChildrenParams, ChildrenResult, void>('pthscope/children');
export const details = new RequestType<DetailsParams, DetailsResult, void>('pthscope/details');
export const search = new RequestType<SearchParams, SearchResult, void>('pthscope/search');
export const tensors = new RequestType<TensorsParams, TensorsResult, void>('pthscope/tensors');
export const setActiveCheckpoint = new RequestType<SetActiveCheckpointParams, SetActiveCheckpointResult, void>('pthscope/setActiveCheckpoint');
export const stats = new RequestType<StatsParams, StatsResult, void>('pthscope/stats');
export const scan = new RequestType<ScanParams, ScanResult, void>('pthscope/scan');
export const moduleStats = new RequestType<ModuleStatsParams, ModuleStatsResult, void>('pthscope/moduleStats');
export const diff = new RequestType<DiffParams, DiffResult, void>('pthscope/diff');
export const convert = new RequestType<ConvertParams, ConvertResult, void>('pthscope/convert');
export const reveal = new RequestType<RevealParams, RevealResult, void>('pthscope/reveal');
export const environment = new RequestType<EnvironmentParams, EnvironmentResult, void>('pthscope/environment');

/** Commands the server runs (`workspace/executeCommand`): name → [arguments, result]. */
export const INSERT_REQUIRES_GRAD_CODE = 'pthscope.insertRequiresGradCode';
export const LIST_MODULES = 'pthscope.listModules';
export const SNIPPET_EDIT = 'pthscope.snippetEdit';
export interface ServerCommands {
  'pthscope.insertRequiresGradCode': [InsertRequiresGradCodeArgs, InsertRequiresGradCodeResult];
  'pthscope.listModules': [ListModulesArgs, ListModulesResult];
  'pthscope.snippetEdit': [SnippetEditArgs, SnippetEditResult];
}

/** The client commands the server's code actions run (their names are protocol too). */
export const CHOOSE_MODULES = 'pthscope.chooseModules';
export const INSERT_SNIPPET = 'pthscope.insertSnippet';
/** `capabilities.experimental[CLIENT_COMMANDS_CAPABILITY]`: this client has the two commands above. */
export const CLIENT_COMMANDS_CAPABILITY = 'pthscopeClientCommands';
