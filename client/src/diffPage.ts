/**
 * The comparison page: a webview panel (media/diff.js, bundled to out/diff.js) that shows what `pthscope/diff` returns
 * for checkpoints A and B. The structure comes first (metadata only, at once), then the values,
 * streamed: the server sends the rows compared so far on the request's partial-result token and
 * its progress on the work-done token; the page's Stop button cancels the request (the server
 * stops the values worker). Messages are `{type, body}`; the page says `ready` first. The page
 * renders what the server sends, like the checkpoint page; it knows no file formats.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ProgressType, WorkDoneProgress, type WorkDoneProgressParams } from 'vscode-languageclient';
import type { Ctx } from './ctx';
import { pageResourceRoots } from './pageHtml';
import * as protocol from './protocol';
import type { DiffProgressValue } from './protocol';

const DIFF_VIEW_TYPE = 'pthscope.diff';
const partialRows = new ProgressType<DiffProgressValue>();

type DiffPageMessage =
  | { type: 'ready' }
  | { type: 'compareValues' }
  | { type: 'cancel' }
  | { type: 'open'; body: { side: 'a' | 'b' } };

class DiffPanel {
  private comparing: vscode.CancellationTokenSource | undefined;

  constructor(private readonly ctx: Ctx, readonly a: string, readonly b: string, readonly panel: vscode.WebviewPanel) {}

  post(type: string, body: unknown): void {
    void this.panel.webview.postMessage({ type, body });
  }

  async onMessage(message: DiffPageMessage): Promise<void> {
    switch (message.type) {
      case 'ready':
        await this.compare();
        return;
      case 'compareValues':
        await this.compareValues();
        return;
      case 'cancel':
        this.comparing?.cancel();
        return;
      case 'open': {
        const file = vscode.Uri.file(message.body.side === 'a' ? this.a : this.b);
        await vscode.commands.executeCommand('pthscope.openCheckpoint', file);
        return;
      }
    }
  }

  /** The structure (instant), then the values. */
  private async compare(): Promise<void> {
    try {
      this.post('structure', await this.ctx.request(protocol.diff, { a: this.a, b: this.b, values: false }));
    } catch (error) {
      this.post('failed', { message: errorMessage(error) });
      return;
    }
    await this.compareValues();
  }

  private async compareValues(): Promise<void> {
    this.comparing?.cancel();
    const cancellation = new vscode.CancellationTokenSource();
    this.comparing = cancellation;
    const client = await this.ctx.start();
    const partialResultToken = randomUUID();
    const workDoneToken = randomUUID();
    const subscriptions = client ? [
      client.onProgress(partialRows, partialResultToken, (value) => { this.post('rows', value); }),
      client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
        if (value.kind === 'report') {
          this.post('progress', { percentage: value.percentage ?? null, message: value.message ?? '' });
        }
      }),
    ] : [];
    const params: protocol.DiffParams & WorkDoneProgressParams = { a: this.a, b: this.b, values: true, partialResultToken, workDoneToken };
    this.post('comparing', {});
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `pthscope: comparing ${path.basename(this.a)} with ${path.basename(this.b)}` },
        () => this.ctx.request(protocol.diff, params, cancellation.token));
      this.post('values', result);
    } catch (error) {
      this.post(cancellation.token.isCancellationRequested ? 'stopped' : 'failed', { message: errorMessage(error) });
    } finally {
      vscode.Disposable.from(...subscriptions).dispose();
      if (this.comparing === cancellation) {
        this.comparing = undefined;
      }
      cancellation.dispose();
    }
  }

  dispose(): void {
    this.comparing?.cancel();
  }
}

/** Opens (or focuses) the comparison of `a` with `b`. */
export class DiffPages {
  private readonly panels = new Map<string, DiffPanel>();

  constructor(private readonly ctx: Ctx) {}

  open(a: vscode.Uri, b: vscode.Uri): void {
    const id = `${a.fsPath}\u0000${b.fsPath}`;
    const existing = this.panels.get(id);
    if (existing) {
      existing.panel.reveal();
      return;
    }
    const title = `${path.basename(a.fsPath)} ↔ ${path.basename(b.fsPath)}`;
    const panel = vscode.window.createWebviewPanel(DIFF_VIEW_TYPE, title, vscode.ViewColumn.Active, {
      enableScripts: true, retainContextWhenHidden: true, localResourceRoots: pageResourceRoots(this.ctx.extension.extensionUri),
    });
    const page = new DiffPanel(this.ctx, a.fsPath, b.fsPath, panel);
    this.panels.set(id, page);
    panel.webview.html = diffHtml(panel.webview, this.ctx.extension.extensionUri, title);
    const subscription = panel.webview.onDidReceiveMessage((message: DiffPageMessage) => void page.onMessage(message));
    panel.onDidDispose(() => {
      this.panels.delete(id);
      subscription.dispose();
      page.dispose();
    });
  }
}

/** The page's HTML shell: CSP from default-src 'none', a nonce script, theme stylesheets. */
function diffHtml(webview: vscode.Webview, extensionUri: vscode.Uri, title: string): string {
  const asset = (...parts: string[]): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'client', ...parts)).toString();
  const nonce = randomBytes(16).toString('base64');
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
    `img-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${csp}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <link href="${asset('out', 'codicons', 'codicon.css')}" rel="stylesheet">
  <link href="${asset('media', 'page.css')}" rel="stylesheet">
  <link href="${asset('media', 'diff.css')}" rel="stylesheet">
  <title>${escapeHtml(title)}</title>
</head>
<body>
  <main id="app" aria-busy="true">
    <header class="title">
      <span class="codicon codicon-diff" aria-hidden="true"></span>
      <h1 id="diff-title">${escapeHtml(title)}</h1>
    </header>
    <p id="status" role="status">Comparing… nothing in either file is executed.</p>
  </main>
  <script nonce="${nonce}" src="${asset('out', 'diff.js')}"></script>
</body>
</html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
