/**
 * Where checkpoint pages open, as tabs: "Open Checkpoint" reuses the tab a file already has (its
 * page, or the text editor's binary-file placeholder, which it replaces); a `.bin` file that opens
 * in the text editor (VS Code's "binary" or "very large" placeholder: `*.bin` cannot be pthscope's
 * default editor, firmware and datasets share the extension) is reopened in its page when the
 * server reads it as a checkpoint, once per file and session (so "Reopen Editor With… Text
 * Editor" sticks); working in a preview tab's page keeps the tab. A checkpoint that opened in the
 * text editor just before pthscope was active gets its page too (see `reopenEarlyTextTabs`).
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import { editorPatterns, matchesEditorPattern } from './editorPatterns';
import { BIN_CHECKPOINT_VIEW_TYPE, CHECKPOINT_VIEW_TYPE, checkpointViewType } from './editor';
import * as protocol from './protocol';

function allTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((group) => group.tabs);
}

function sameFile(a: vscode.Uri, b: vscode.Uri): boolean {
  return a.toString() === b.toString();
}

function isPageTab(tab: vscode.Tab, uri: vscode.Uri): boolean {
  return tab.input instanceof vscode.TabInputCustom && sameFile(tab.input.uri, uri)
    && [CHECKPOINT_VIEW_TYPE, BIN_CHECKPOINT_VIEW_TYPE].includes(tab.input.viewType);
}

function isTextTab(tab: vscode.Tab, uri?: vscode.Uri): tab is vscode.Tab & { input: vscode.TabInputText } {
  return tab.input instanceof vscode.TabInputText && (uri === undefined || sameFile(tab.input.uri, uri));
}

/** Opens `uri`'s page in the tab the file already has: its page, or in place of its text editor. */
export async function openCheckpointTab(uri: vscode.Uri): Promise<void> {
  const page = allTabs().find((tab) => isPageTab(tab, uri));
  if (page) {
    await vscode.commands.executeCommand('vscode.openWith', uri, (page.input as vscode.TabInputCustom).viewType, { viewColumn: page.group.viewColumn });
    return;
  }
  const text = allTabs().find((tab) => isTextTab(tab, uri));
  await replaceWithPage(uri, text, checkpointViewType(uri));
}

async function replaceWithPage(uri: vscode.Uri, text: vscode.Tab | undefined, viewType: string): Promise<void> {
  const where = text ? { viewColumn: text.group.viewColumn, preview: text.isPreview, preserveFocus: !text.isActive } : {};
  await vscode.commands.executeCommand('vscode.openWith', uri, viewType, where);
  // A preview text tab has been replaced by the page already; a pinned one is still there.
  const left = allTabs().find((tab) => isTextTab(tab, uri));
  if (left) {
    await vscode.window.tabGroups.close(left, true);
  }
}

/** How long after activation a checkpoint opening in the text editor is still an early one. */
const EARLY_MS = 5000;

/**
 * Right after a window (re)loads, the workbench may not know pthscope's editor yet: a checkpoint
 * clicked then opens in the text editor's binary-file placeholder, which VS Code then reuses for
 * that file. Text tabs of files pthscope opens by default that are there at activation (or open in
 * the first seconds after) get their page instead; later, "Reopen Editor With… Text Editor" sticks.
 */
export function reopenEarlyTextTabs(ctx: Ctx): vscode.Disposable {
  const patterns = editorPatterns(ctx.extension.extension.packageJSON, CHECKPOINT_VIEW_TYPE);
  const reopen = (tabs: readonly vscode.Tab[]): void => {
    for (const tab of tabs) {
      if (isTextTab(tab) && tab.input.uri.scheme === 'file' && matchesEditorPattern(path.basename(tab.input.uri.fsPath), patterns)) {
        ctx.log.info(`${tab.input.uri.fsPath} opened in the text editor before pthscope was ready: opening its page.`);
        void replaceWithPage(tab.input.uri, tab, CHECKPOINT_VIEW_TYPE);
      }
    }
  };
  reopen(allTabs());
  const watching = vscode.window.tabGroups.onDidChangeTabs((event) => { reopen(event.opened); });
  const stop = setTimeout(() => { watching.dispose(); }, EARLY_MS);
  return { dispose: () => { clearTimeout(stop); watching.dispose(); } };
}

/** Reopens in its page a `.bin` checkpoint that opened in the text editor (see the module's comment). */
export function openBinCheckpointsInPages(ctx: Ctx): vscode.Disposable {
  const seen = new Set<string>();
  return vscode.window.tabGroups.onDidChangeTabs((event) => {
    for (const tab of [...event.opened, ...event.changed]) {
      if (!isTextTab(tab) || tab.input.uri.scheme !== 'file' || !tab.input.uri.path.toLowerCase().endsWith('.bin')) {
        continue;
      }
      const uri = tab.input.uri;
      if (seen.has(uri.toString()) || !ctx.config.openBinFiles) {
        continue;
      }
      seen.add(uri.toString());
      void reopenIfCheckpoint(ctx, uri);
    }
  });
}

async function reopenIfCheckpoint(ctx: Ctx, uri: vscode.Uri): Promise<void> {
  const result = await ctx.request(protocol.open, { file: uri.fsPath }).catch(() => undefined);
  if (!result || result.root === null || result.summary.tensors === 0) {
    return; // not a checkpoint pthscope reads: the text editor stays
  }
  const text = allTabs().find((tab) => isTextTab(tab, uri));
  if (!text) {
    return; // closed meanwhile
  }
  ctx.log.info(`${uri.fsPath} is a ${result.format} checkpoint: opening it in pthscope instead of the text editor ("Reopen Editor With…" shows it as text).`);
  await replaceWithPage(uri, text, BIN_CHECKPOINT_VIEW_TYPE);
}

/** Pins the page's tab when it is a preview (italic) tab: the user is working in it. */
export async function keepPreviewOpen(panel: vscode.WebviewPanel, file: string): Promise<void> {
  const uri = vscode.Uri.file(file);
  const tab = allTabs().find((t) => t.isActive && t.group.isActive && isPageTab(t, uri));
  if (panel.active && tab?.isPreview) {
    await vscode.commands.executeCommand('workbench.action.keepEditor');
  }
}
