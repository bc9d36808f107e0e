/**
 * Activation: build the context, the tree and the page provider, register the commands and
 * start the server — right away when a page needs it, else a moment later, so that a page that
 * activated the extension gets its webview before the server's start keeps the extension host
 * busy. Loud on failure.
 */
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { Ctx } from './ctx';
import { CheckpointEditorProvider } from './editor';
import { InterpreterStatusItem } from './statusBar';
import { openBinCheckpointsInPages, reopenEarlyTextTabs } from './tabs';
import { CheckpointTree } from './tree';

let ctx: Ctx | undefined;
/** When the bundle's code had run (all its modules evaluated): what loading the extension cost. */
const loadedAt = Date.now();

export function activate(extension: vscode.ExtensionContext): void {
  const activatingAt = Date.now();
  ctx = new Ctx(extension);
  ctx.startup.mark('extension loaded', loadedAt);
  ctx.startup.mark('activating', activatingAt);
  extension.subscriptions.push(ctx);
  try {
    const tree = new CheckpointTree(ctx);
    ctx.pushCleanup(tree);
    const pages = CheckpointEditorProvider.register(ctx, tree);
    registerCommands({ ctx, tree, pages });
    ctx.pushCleanup(openBinCheckpointsInPages(ctx), reopenEarlyTextTabs(ctx), new InterpreterStatusItem(ctx));
    ctx.startup.mark('activated');
    ctx.startSoon();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    ctx.log.error(`Activation failed: ${message}`);
    void vscode.window.showErrorMessage(`pthscope failed to activate: ${message}`);
  }
}

export async function deactivate(): Promise<void> {
  await ctx?.stop();
  ctx = undefined;
}
