/**
 * Checkpoints that are no single file a custom editor could open: a folder (a torch.distributed
 * checkpoint, a sharded set, per-rank files), a shard index (`*.index.json`) or a DCP `.metadata`.
 * They get the same page, in a webview panel of their own; the server opens the path as it is
 * (it decides what the folder holds). Everything else opens in the custom editor.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CheckpointEditorProvider } from './editor';
import { pageResourceRoots } from './pageHtml';
import { openCheckpointTab } from './tabs';

const SET_VIEW_TYPE = 'pthscope.checkpointSet';
/** Files that stand for a whole set: a shard index, a DCP folder's metadata (also one rank's). */
const SET_FILE = /(\.index\.json|^(__\d+)?\.metadata)$/;

/** Whether `uri` opens as a set page: a folder, an index or a `.metadata`. */
export async function opensAsSet(uri: vscode.Uri): Promise<boolean> {
  if (SET_FILE.test(path.basename(uri.fsPath))) {
    return true;
  }
  try {
    return ((await vscode.workspace.fs.stat(uri)).type & vscode.FileType.Directory) !== 0;
  } catch {
    return false;
  }
}

/** Opens `uri` in the page: a set page for a folder, an index or a `.metadata`, else the editor. */
export async function openCheckpointPage(pages: CheckpointEditorProvider, extensionUri: vscode.Uri, uri: vscode.Uri): Promise<void> {
  if (!(await opensAsSet(uri))) {
    await openCheckpointTab(uri);
    return;
  }
  if (pages.focusPage(uri.fsPath)) {
    return;
  }
  const panel = vscode.window.createWebviewPanel(SET_VIEW_TYPE, path.basename(uri.fsPath), vscode.ViewColumn.Active, {
    enableScripts: true,
    retainContextWhenHidden: true,
    localResourceRoots: pageResourceRoots(extensionUri),
  });
  panel.iconPath = vscode.Uri.joinPath(extensionUri, 'client', 'media', 'pthscope.svg');
  pages.showInPanel(uri, panel);
}
