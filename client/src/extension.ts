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
import { openBinCheckpointsInPages } from './tabs';
import { CheckpointTree } from './tree';

let ctx: Ctx | undefined;

export function activate(extension: vscode.ExtensionContext): void {
  ctx = new Ctx(extension);
  extension.subscriptions.push(ctx);
  try {
    const tree = new CheckpointTree(ctx);
    ctx.pushCleanup(tree);
    const pages = CheckpointEditorProvider.register(ctx, tree);
    registerCommands({ ctx, tree, pages });
    ctx.pushCleanup(openBinCheckpointsInPages(ctx), new InterpreterStatusItem(ctx));
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
