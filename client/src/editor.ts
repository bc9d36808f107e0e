/**
 * The checkpoint page: a read-only custom editor whose webview (media/page/) renders what
 * `pthscope/open`, `pthscope/tensors` and `pthscope/stats` return. The read starts as the panel
 * opens, while the webview boots (checkpointPage.ts keeps the messages until the page is ready),
 * and the table's first page comes with it. The active page's checkpoint is what the side panel
 * shows; when a file's last page closes, the panel empties. A page reads its file again when it
 * changes on disk (saying so meanwhile, so that nothing errors), when the server restarts, and on
 * the page's Retry. In Restricted Mode the page also gets `trust`: what that mode changes. After
 * a scan it gets `scanned` (the server's summary and report); a tree node's statistics arrive as
 * `moduleStats` (valueCommands.ts sends both). Folders and shard indexes get the same page in a
 * panel of their own (setPage.ts).
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { WorkDoneProgress, type WorkDoneProgressParams } from 'vscode-languageclient';
import { CheckpointPage, FIRST_ROWS_REQUEST, isFirstPage, type PageMessage } from './checkpointPage';
import type { Ctx } from './ctx';
import { pageHtml, pageResourceRoots } from './pageHtml';
import * as protocol from './protocol';
import type { NodeSummary, OpenResult, PathElement } from './protocol';
import { opensAsSet } from './setPage';
import { keepPreviewOpen } from './tabs';
import type { CheckpointTree } from './tree';

export const CHECKPOINT_VIEW_TYPE = 'pthscope.checkpoint';
/** The same page for *.bin, offered ("Open With…") rather than the default; see tabs.ts. */
export const BIN_CHECKPOINT_VIEW_TYPE = 'pthscope.binCheckpoint';
/** The page's view type for a file: *.bin has its own ("option" priority) registration. */
export function checkpointViewType(file: vscode.Uri): string {
  return file.path.toLowerCase().endsWith('.bin') ? BIN_CHECKPOINT_VIEW_TYPE : CHECKPOINT_VIEW_TYPE;
}

/** Opening faster than this shows progress in the status bar only. */
const SLOW_OPEN_MS = 1000;
/** The table's page size (media/page/table.js PAGE_SIZE). */
const TABLE_PAGE_SIZE = 500;
/** A file being written changes many times: read it once it has been quiet this long. */
const QUIET_AFTER_CHANGE_MS = 400;

/** A node to show in the page: a summary from the tree or Find, or a tensor named by its path (`tensor: true`). */
export type RevealTarget = Pick<NodeSummary, 'key' | 'path' | 'tensor'> | { key: string; path: PathElement[]; tensor: boolean };

export interface RevealOptions {
  /** Keep the keyboard where it is (a click in the side panel). */
  preserveFocus?: boolean;
}

export class CheckpointEditorProvider implements vscode.CustomReadonlyEditorProvider {
  private readonly pages = new Set<CheckpointPage>();

  static register(ctx: Ctx, tree: CheckpointTree): CheckpointEditorProvider {
    const provider = new CheckpointEditorProvider(ctx, tree);
    const options = { webviewOptions: { retainContextWhenHidden: true }, supportsMultipleEditorsPerDocument: true };
    ctx.pushCleanup(
      vscode.window.registerCustomEditorProvider(CHECKPOINT_VIEW_TYPE, provider, options),
      vscode.window.registerCustomEditorProvider(BIN_CHECKPOINT_VIEW_TYPE, provider, options),
      ctx.onDidChangeServer((change) => { provider.onServerChange(change); }),
    );
    return provider;
  }

  private constructor(private readonly ctx: Ctx, private readonly tree: CheckpointTree) {}

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  resolveCustomEditor(document: vscode.CustomDocument, panel: vscode.WebviewPanel): void {
    this.showInPanel(document.uri, panel);
  }

  /** The page of `uri` in `panel`: a custom editor's, or a panel of its own (setPage.ts: a folder). */
  showInPanel(uri: vscode.Uri, panel: vscode.WebviewPanel): void {
    this.ctx.startup.mark('page opened');
    const page = new CheckpointPage(uri.fsPath, panel);
    this.pages.add(page);
    panel.webview.options = { enableScripts: true, localResourceRoots: pageResourceRoots(this.ctx.extension.extensionUri) };
    panel.webview.html = pageHtml(panel.webview, this.ctx.extension.extensionUri, path.basename(page.file));
    // Next turn: the HTML goes to the webview first, then the read (which may start the server) begins.
    setTimeout(() => void this.read(page), 0);
    page.post('trust', this.ctx.restrictedModeNote ?? null);
    const watcher = watchFile(uri);
    let quiet: NodeJS.Timeout | undefined;
    const onChange = (why: string) => {
      page.post('changed', { why });
      clearTimeout(quiet);
      quiet = setTimeout(() => void whenUnchanged(uri).then(() => this.read(page)), QUIET_AFTER_CHANGE_MS);
    };
    const subscriptions = [
      watcher,
      watcher.onDidChange(() => { onChange('The file changed on disk: reading it again…'); }),
      watcher.onDidCreate(() => { onChange('The file was written again: reading it…'); }),
      watcher.onDidDelete(() => { clearTimeout(quiet); page.post('changed', { why: 'The file was deleted from disk.' }); }),
      panel.webview.onDidReceiveMessage((message: PageMessage) => void this.onMessage(page, message)),
      panel.onDidChangeViewState(() => {
        if (panel.active && page.result) {
          this.tree.show(page.result);
        }
      }),
      this.ctx.onDidChangeTrustNote(() => { page.post('trust', this.ctx.restrictedModeNote ?? null); }),
    ];
    panel.onDidDispose(() => {
      clearTimeout(quiet);
      this.pages.delete(page);
      vscode.Disposable.from(...subscriptions).dispose();
      if (this.tree.current?.file === page.file && ![...this.pages].some((p) => p.file === page.file)) {
        this.tree.clear();
      }
    });
  }

  /** After a scan: the pages of `file` mark what it found (`reopened`: the open result with its marks). */
  scanned(file: string, reopened: OpenResult, result: protocol.ScanResult | null): void {
    for (const page of this.pages) {
      if (page.file === file) {
        page.result = reopened;
        page.firstTensors = undefined; // the table's pages again, with the scan's marks
        page.postAfterInit('scanned', { summary: reopened.scan ?? null, result });
      }
    }
  }

  /** Opens (or focuses) the page for `file` and shows a node's statistics in its values panel. */
  async showModuleStats(file: string, result: protocol.ModuleStatsResult): Promise<void> {
    const page = this.pageOf(file) ?? await this.openPage(file, {});
    page?.panel.reveal();
    page?.postAfterInit('moduleStats', result);
  }

  /** Opens (or focuses) the page for `file` and shows `node` there: a tensor's row and values, else the tensors under it. */
  async revealInPage(file: string, node: RevealTarget, options: RevealOptions = {}): Promise<void> {
    const reveal = { key: node.key, path: node.path, tensor: typeof node.tensor === 'boolean' ? node.tensor : node.tensor !== undefined };
    const existing = this.pageOf(file);
    if (existing) {
      existing.panel.reveal(existing.panel.viewColumn, options.preserveFocus === true);
      existing.post('reveal', reveal);
      return;
    }
    (await this.openPage(file, options))?.post('reveal', reveal);
  }

  /** Focuses the page of `file` if one is open; false when there is none. */
  focusPage(file: string): boolean {
    const page = this.pageOf(file);
    page?.panel.reveal();
    return page !== undefined;
  }

  private pageOf(file: string): CheckpointPage | undefined {
    return [...this.pages].find((p) => p.file === file);
  }

  /** Opens a page for `file` (a set page for a folder or an index) and returns it. */
  private async openPage(file: string, options: RevealOptions): Promise<CheckpointPage | undefined> {
    const uri = vscode.Uri.file(file);
    if (await opensAsSet(uri)) {
      await vscode.commands.executeCommand('pthscope.openCheckpoint', uri);
    } else {
      await vscode.commands.executeCommand('vscode.openWith', uri, checkpointViewType(uri), { preserveFocus: options.preserveFocus === true });
    }
    return this.pageOf(file);
  }

  private onServerChange(change: 'stopping' | 'started'): void {
    for (const page of this.pages) {
      if (change === 'stopping') {
        page.startReading(); // a read in flight is cut by the restart: the read once it has started replaces it
        page.post('changed', { why: 'The pthscope server is restarting…' });
      } else {
        void this.read(page);
      }
    }
  }

  private async onMessage(page: CheckpointPage, message: PageMessage): Promise<void> {
    switch (message.type) {
      case 'ready':
        this.ctx.startup.mark('webview loading', message.body.loadingAt);
        this.ctx.startup.mark('webview ready', message.body.readyAt);
        if (!page.markReady()) { // its webview was reloaded ("Reload Webviews"): what it was told is gone
          page.post('trust', this.ctx.restrictedModeNote ?? null);
          await this.read(page);
        }
        return;
      case 'retry':
        if (this.ctx.isServerRunning) {
          await this.read(page);
        } else {
          await this.ctx.restart(); // reads every page again once the server is up (or says why not)
        }
        return;
      case 'tensors': {
        const { requestId, ...params } = message.body;
        try {
          const prefetched = isFirstPage(params, TABLE_PAGE_SIZE) ? page.firstTensors : undefined;
          const result = prefetched ?? await this.ctx.request(protocol.tensors, { ...params, file: page.file });
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
          if (message.body.focus) {
            await vscode.commands.executeCommand('pthscope.tree.focus');
          } else if (!this.tree.view.visible) {
            return; // Enter in the table: follow in the side panel only when it is open
          }
          await this.tree.reveal(message.body.path, message.body.focus);
        }
        return;
      case 'interacted':
        await keepPreviewOpen(page.panel, page.file);
        return;
      case 'shown': {
        const { what, at, receivedAt, drawnAt } = message.body;
        if (receivedAt !== undefined && drawnAt !== undefined) {
          this.ctx.startup.mark('summary received', receivedAt);
          this.ctx.startup.mark('summary drawn', drawnAt);
        }
        this.ctx.startup.mark(what === 'rows' ? 'first rows shown' : 'summary shown', at);
        return;
      }
      case 'copy':
        await vscode.env.clipboard.writeText(message.body.text);
        void vscode.window.setStatusBarMessage(`Copied ${message.body.text}`, 2000);
        return;
      case 'openSet':
        await vscode.commands.executeCommand('pthscope.openCheckpoint', vscode.Uri.file(message.body.file));
        return;
      case 'scan':
        await vscode.commands.executeCommand('pthscope.scan', vscode.Uri.file(page.file));
        return;
    }
  }

  /** Reads the page's file (again) and shows it; the table's first page is asked for at once too. */
  private async read(page: CheckpointPage): Promise<void> {
    const latest = page.startReading();
    try {
      const result = await this.openWithProgress(page.file);
      if (!latest()) {
        return; // a newer read (the file changed again) will show its result
      }
      this.ctx.startup.mark('checkpoint read');
      const { first_tensors: firstRows, ...opened } = result;
      page.result = opened;
      page.firstTensors = firstRows;
      page.post('init', { ...opened, firstRowsFollow: firstRows !== undefined });
      if (firstRows) {
        // Right behind `init`, unasked: the page's first rows cost no round trip of their own.
        page.post('tensors', { requestId: FIRST_ROWS_REQUEST, ...firstRows });
      }
      if (page.panel.active || this.tree.current?.file === page.file) {
        this.tree.show(opened);
      }
    } catch (error) {
      if (latest()) {
        this.ctx.log.error(`Opening ${page.file}: ${errorMessage(error)}`);
        page.post('failed', { message: errorMessage(error) });
      }
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
    const params: protocol.OpenParams & WorkDoneProgressParams = { file, firstTensors: TABLE_PAGE_SIZE, workDoneToken };
    try {
      return await this.ctx.request(protocol.open, params, token);
    } finally {
      subscription?.dispose();
    }
  }
}

/** Resolves once the file's size and mtime stay the same for a moment (a writer may pause between writes). */
async function whenUnchanged(uri: vscode.Uri): Promise<void> {
  const stamp = async (): Promise<string> => {
    try {
      const st = await vscode.workspace.fs.stat(uri);
      return `${st.size}:${st.mtime}`;
    } catch {
      return 'missing';
    }
  };
  let before = await stamp();
  for (let attempt = 0; attempt < 20; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, QUIET_AFTER_CHANGE_MS));
    const now = await stamp();
    if (now === before) {
      return;
    }
    before = now;
  }
}

/** A watcher of one file, in a workspace folder or not (VS Code watches its folder, not recursively). */
function watchFile(uri: vscode.Uri): vscode.FileSystemWatcher {
  return vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.joinPath(uri, '..'), path.basename(uri.fsPath)));
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
