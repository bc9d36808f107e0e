// @ts-check
// The page's one VS Code handle and the state its parts share: the file shown, the table's query
// and selection, the request ids of the values pane, whether the file is being read again.

export const vscode = acquireVsCodeApi();

/** Posts `{type, body}` to the extension. */
export function post(type, body) {
  vscode.postMessage(body === undefined ? { type } : { type, body });
}

const saved = vscode.getState() || {};

export const state = {
  result: null,
  /** the table's columns for this file (requires_grad only when the file stores it), and those that fit its width now */
  columns: [],
  shown: [],
  widths: saved.widths || {},
  total: 0,
  filter: saved.filter || '',
  sort: saved.sort || 'index',
  descending: saved.descending === true,
  generation: 0,
  /** page index → tensors of that page, for the current generation */
  pages: new Map(),
  /** requestId → {generation, page} (a page) or {generation, locate: path} (where a tensor is) */
  inFlight: new Map(),
  nextRequestId: 1,
  selected: -1,
  /** a tensor to select, and show, once its row is known */
  selectPath: saved.selectedPath || null,
  /** true while the file is read again: no requests, no errors */
  waiting: false,
  /** the last stats request, the one the values pane waits for, and its tensor */
  statsRequestId: 0,
  statsPath: null,
  followTimer: undefined,
  filterTimer: undefined,
  interacted: false,
  rowsShown: false,
  /** while `init` sets up the table: its first page follows unasked (for file order, no filter) */
  firstRowsFollow: false,
  charWidth: 0,
  pendingReveal: null,
  /** key → the last scan's mark of that row, as the server sent it with the table's pages */
  marks: new Map(),
};

/** The first time the user works in the page: a preview tab is then kept open. */
export function interacted() {
  if (!state.interacted) {
    state.interacted = true;
    post('interacted');
  }
}
