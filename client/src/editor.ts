/**
 * The checkpoint page: a read-only custom editor whose webview (media/page.js) renders what
 * `pthscope/open`, `pthscope/tensors` and `pthscope/stats` return. Messages are `{type, body}`; the page says
 * `ready` before it gets `init`. The active page's checkpoint is what the side panel shows. In
 * Restricted Mode the page also gets `trust`: a note on what that mode changes (null: none).
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { WorkDoneProgress, type WorkDoneProgressParams } from 'vscode-languageclient';
import type { Ctx } from './ctx';
import { pageHtml, pageResourceRoots } from './pageHtml';
import * as protocol from './protocol';
import type { OpenResult, PathElement, TensorsParams } from './protocol';
import type { CheckpointTree } from './tree';

export const CHECKPOINT_VIEW_TYPE = 'pthscope.checkpoint';
/** The same page for *.bin, offered ("Open With…") rather than the default. */
export const BIN_CHECKPOINT_VIEW_TYPE = 'pthscope.binCheckpoint';
/** The page's view type for a file: *.bin has its own ("option" priority) registration. */
export function checkpointViewType(file: vscode.Uri): string {
  return file.path.endsWith('.bin') ? BIN_CHECKPOINT_VIEW_TYPE : CHECKPOINT_VIEW_TYPE;
}

/** Opening faster than this shows progress in the status bar only. */
const SLOW_OPEN_MS = 1000;

type PageMessage =
  | { type: 'ready' }
  | { type: 'tensors'; body: TensorsParams & { requestId: number } }
  | { type: 'stats'; body: { requestId: number; path: PathElement[] } }
  | { type: 'revealInTree'; body: { key: string } }
  | { type: 'copy'; body: { text: string } };

class CheckpointPage {
  result: OpenResult | undefined;
  private ready = false;
  private pendingReveal: string | undefined;

  constructor(readonly file: string, readonly panel: vscode.WebviewPanel) {}

  post(type: string, body: unknown): void {
    void this.panel.webview.postMessage({ type, body });
  }

  markReady(): void {
    this.ready = true;
    if (this.pendingReveal !== undefined && this.result) {
      this.post('reveal', { key: this.pendingReveal });
      this.pendingReveal = undefined;
    }
  }

  /** Shows the tensors under `key` in the table (after the page has its data). */
  revealKey(key: string): void {
    this.panel.reveal();
    if (this.ready && this.result) {
      this.post('reveal', { key });
    } else {
      this.pendingReveal = key;
    }
  }
}

export class CheckpointEditorProvider implements vscode.CustomReadonlyEditorProvider {
  private readonly pages = new Set<CheckpointPage>();

  static register(ctx: Ctx, tree: CheckpointTree): CheckpointEditorProvider {
    const provider = new CheckpointEditorProvider(ctx, tree);
    const options = { webviewOptions: { retainContextWhenHidden: true }, supportsMultipleEditorsPerDocument: true };
    ctx.pushCleanup(
      vscode.window.registerCustomEditorProvider(CHECKPOINT_VIEW_TYPE, provider, options),
      vscode.window.registerCustomEditorProvider(BIN_CHECKPOINT_VIEW_TYPE, provider, options),
    );
    return provider;
  }

  private constructor(private readonly ctx: Ctx, private readonly tree: CheckpointTree) {}

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  resolveCustomEditor(document: vscode.CustomDocument, panel: vscode.WebviewPanel): void {
    const page = new CheckpointPage(document.uri.fsPath, panel);
    this.pages.add(page);
    panel.webview.options = { enableScripts: true, localResourceRoots: pageResourceRoots(this.ctx.extension.extensionUri) };
    panel.webview.html = pageHtml(panel.webview, this.ctx.extension.extensionUri, path.basename(page.file));
    const subscriptions = [
      panel.webview.onDidReceiveMessage((message: PageMessage) => void this.onMessage(page, message)),
      panel.onDidChangeViewState(() => {
        if (panel.active && page.result) {
          this.tree.show(page.result);
        }
      }),
      this.ctx.onDidChangeTrustNote(() => { page.post('trust', this.ctx.restrictedModeNote ?? null); }),
    ];
    panel.onDidDispose(() => {
      this.pages.delete(page);
      vscode.Disposable.from(...subscriptions).dispose();
      // Python files stop linking the side panel's checkpoint once its last page closes.
      if (this.tree.current?.file === page.file && ![...this.pages].some((p) => p.file === page.file)) {
        void this.ctx.request(protocol.setActiveCheckpoint, { file: null }).catch(() => undefined);
      }
    });
  }

  /** Opens (or focuses) the page for `file` and shows the tensors under `key`. */
  async revealInPage(file: string, key: string): Promise<void> {
    const existing = [...this.pages].find((p) => p.file === file);
    if (existing) {
      existing.revealKey(key);
      return;
    }
    const uri = vscode.Uri.file(file);
    await vscode.commands.executeCommand('vscode.openWith', uri, checkpointViewType(uri));
    [...this.pages].find((p) => p.file === file)?.revealKey(key);
  }

  private async onMessage(page: CheckpointPage, message: PageMessage): Promise<void> {
    switch (message.type) {
      case 'ready':
        await this.openInPage(page);
        page.post('trust', this.ctx.restrictedModeNote ?? null);
        page.markReady();
        return;
      case 'tensors': {
        const { requestId, ...params } = message.body;
        try {
          const result = await this.ctx.request(protocol.tensors, { ...params, file: page.file });
          page.post('tensors', { requestId, ...result });
        } catch (error) {
          page.post('tensorsFailed', { requestId, message: errorMessage(error) });
        }
        return;
      }
      case 'stats': {
        const { requestId, path: tensorPath } = message.body;
        try {
          const result = await this.ctx.request(protocol.stats, { file: page.file, path: tensorPath });
          page.post('stats', { requestId, ...result });
        } catch (error) {
          page.post('stats', { requestId, error: errorMessage(error) });
        }
        return;
      }
      case 'revealInTree':
        if (page.result) {
          this.tree.show(page.result);
          await vscode.commands.executeCommand('pthscope.tree.focus');
          await this.tree.reveal(message.body.key);
        }
        return;
      case 'copy':
        await vscode.env.clipboard.writeText(message.body.text);
        void vscode.window.setStatusBarMessage(`Copied ${message.body.text}`, 2000);
        return;
    }
  }

  private async openInPage(page: CheckpointPage): Promise<void> {
    try {
      const result = await this.openWithProgress(page.file);
      page.result = result;
      page.post('init', result);
      if (page.panel.active) {
        this.tree.show(result);
      }
    } catch (error) {
      this.ctx.log.error(`Opening ${page.file}: ${errorMessage(error)}`);
      page.post('failed', { message: errorMessage(error) });
    }
  }

  /**
   * `pthscope/open` with progress in the status bar, and, when it takes longer than a moment,
   * a cancellable notification that shows the server's work-done messages.
   */
  private async openWithProgress(file: string): Promise<OpenResult> {
    const title = `pthscope: reading ${path.basename(file)}`;
    const cancellation = new vscode.CancellationTokenSource();
    let notify: vscode.Progress<{ message?: string }> | undefined;
    const opening = this.open(file, (message) => notify?.report({ message }), cancellation.token);
    const slow = setTimeout(() => {
      void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) => {
        notify = progress;
        token.onCancellationRequested(() => { cancellation.cancel(); });
        return opening.catch(() => undefined);
      });
    }, SLOW_OPEN_MS);
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title }, () => opening);
    } finally {
      clearTimeout(slow);
      cancellation.dispose();
    }
  }

  /** `pthscope/open`, forwarding the server's work-done progress messages to `report`. */
  private async open(file: string, report: (message: string | undefined) => void, token: vscode.CancellationToken): Promise<OpenResult> {
    const workDoneToken = randomUUID();
    const client = await this.ctx.start();
    const subscription = client?.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
      if (value.kind !== 'end') {
        report(value.message);
      }
    });
    const params: protocol.OpenParams & WorkDoneProgressParams = { file, workDoneToken };
    try {
      return await this.ctx.request(protocol.open, params, token);
    } finally {
      subscription?.dispose();
    }
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
