/**
 * One open checkpoint page: its webview panel, what it shows, and the messages it sends and gets.
 * Messages are `{type, body}`, posted from the start: VS Code delivers them in order once the
 * webview's document has loaded, so the read of the file starts with the panel and overlaps the
 * webview's boot. What the page may ask and be told is typed here; editor.ts decides what to answer.
 */
import type * as vscode from 'vscode';
import type { ModuleStatsResult, OpenResult, PathElement, ScanResult, ScanSummary, TensorPage, TensorsParams, TensorsResult } from './protocol';

/** What the page says. */
export type PageMessage =
  | { type: 'ready'; body: { loadingAt: number; readyAt: number } }
  | { type: 'tensors'; body: TensorsParams & { requestId: number } }
  | { type: 'stats'; body: { requestId: number; path: PathElement[] } }
  | { type: 'revealInTree'; body: { path: PathElement[]; focus: boolean } }
  | { type: 'copy'; body: { text: string } }
  | { type: 'openSet'; body: { file: string } }
  | { type: 'scan' }
  | { type: 'retry' }
  | { type: 'interacted' }
  | { type: 'shown'; body: { what: 'summary' | 'rows'; at: number; receivedAt?: number; drawnAt?: number } };

/** What the page is told (media/page/main.js handles each). */
export interface PageUpdates {
  /**
   * A `pthscope/open` result: the page renders it (again, after a reload, keeping its view).
   * With `firstRowsFollow`, the table's first page (isFirstPage) comes next, unasked, as
   * `tensors` with requestId FIRST_ROWS_REQUEST.
   */
  init: OpenResult & { firstRowsFollow: boolean };
  failed: { message: string };
  /** The file changed on disk (or was deleted), or the server restarts: the page waits for `init`. */
  changed: { why: string };
  reveal: { key: string; path: PathElement[]; tensor: boolean };
  tensors: TensorsResult & { requestId: number };
  tensorsFailed: { requestId: number; message: string };
  stats: { requestId: number } & Record<string, unknown>;
  trust: unknown;
  /** After a scan: its summary (null: none) and, when it just ran, its report. */
  scanned: { summary: ScanSummary | null; result: ScanResult | null };
  moduleStats: ModuleStatsResult;
}

/** The request id the page gives the first page that follows `init` (its own ids start at 1). */
export const FIRST_ROWS_REQUEST = 0;

/** The table's first page as the page asks for it when it opens (offset 0, no filter, file order). */
export function isFirstPage(params: TensorsParams, pageSize: number): boolean {
  return (params.offset ?? 0) === 0 && (params.limit ?? pageSize) === pageSize && !params.filter
    && (params.sort ?? 'index') === 'index' && !params.descending && !params.rowOf;
}

export class CheckpointPage {
  result: OpenResult | undefined;
  /** The table's first page, which came with the open (the page is given it at once). */
  firstTensors: TensorPage | undefined;
  private ready = false;
  /** Messages about the file's data: they follow the page's next `init`. */
  private readonly afterInit: { type: keyof PageUpdates; body: PageUpdates[keyof PageUpdates] }[] = [];
  private initPosted = false;
  private reading = 0;

  constructor(readonly file: string, readonly panel: vscode.WebviewPanel) {}

  post<K extends keyof PageUpdates>(type: K, body: PageUpdates[K]): void {
    // Also while the webview boots: VS Code holds a new webview's messages until its document has
    // loaded (the page's script listens by then), so its data need not wait for its `ready`.
    void this.panel.webview.postMessage({ type, body });
    if (type === 'init') {
      this.initPosted = true;
      for (const message of this.afterInit.splice(0)) {
        this.post(message.type, message.body);
      }
    }
  }

  /** Posts now if the page has been given its data, else right after it is. */
  postAfterInit<K extends keyof PageUpdates>(type: K, body: PageUpdates[K]): void {
    if (this.initPosted) {
      this.post(type, body);
    } else {
      this.afterInit.push({ type, body });
    }
  }

  /** The page's script has run: true the first time, false when its webview was reloaded. */
  markReady(): boolean {
    const first = !this.ready;
    this.ready = true;
    return first;
  }

  /** A new read of the file starts; returns a check that it is still the latest when it ends. */
  startReading(): () => boolean {
    const mine = ++this.reading;
    this.result = undefined;
    this.firstTensors = undefined;
    return () => mine === this.reading;
  }
}
