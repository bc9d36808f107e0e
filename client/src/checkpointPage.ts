/**
 * One open checkpoint page: its webview panel, what it shows, and the messages it sends and gets.
 * Messages are `{type, body}`; those posted before the page says `ready` wait in order, so the
 * read of the file can start with the panel and overlap the webview's boot. What the page may
 * ask and be told is typed here; editor.ts decides what to answer.
 */
import type * as vscode from 'vscode';
import type { ModuleStatsResult, OpenResult, PathElement, ScanResult, ScanSummary, TensorsParams, TensorsResult } from './protocol';

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
  | { type: 'shown'; body: { what: 'summary' | 'rows'; at: number } };

/** What the page is told (media/page/main.js handles each). */
export interface PageUpdates {
  /** A `pthscope/open` result: the page renders it (again, after a reload, keeping its view). */
  init: OpenResult;
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

/** The table's first page as the page asks for it when it opens (offset 0, no filter, file order). */
export function isFirstPage(params: TensorsParams, pageSize: number): boolean {
  return (params.offset ?? 0) === 0 && (params.limit ?? pageSize) === pageSize && !params.filter
    && (params.sort ?? 'index') === 'index' && !params.descending && !params.rowOf;
}

export class CheckpointPage {
  result: OpenResult | undefined;
  /** The table's first page, asked for with the open so that it is there when the page asks. */
  firstTensors: Promise<TensorsResult> | undefined;
  private ready = false;
  private readonly outbox: { type: string; body: unknown }[] = [];
  /** Messages about the file's data: they follow the page's next `init`. */
  private readonly afterInit: { type: keyof PageUpdates; body: PageUpdates[keyof PageUpdates] }[] = [];
  private initPosted = false;
  private reading = 0;

  constructor(readonly file: string, readonly panel: vscode.WebviewPanel) {}

  post<K extends keyof PageUpdates>(type: K, body: PageUpdates[K]): void {
    if (this.ready) {
      void this.panel.webview.postMessage({ type, body });
    } else {
      this.outbox.push({ type, body });
    }
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

  markReady(): void {
    this.ready = true;
    for (const message of this.outbox.splice(0)) {
      void this.panel.webview.postMessage(message);
    }
  }

  /** A new read of the file starts; returns a check that it is still the latest when it ends. */
  startReading(): () => boolean {
    const mine = ++this.reading;
    this.result = undefined;
    this.firstTensors = undefined;
    return () => mine === this.reading;
  }
}
