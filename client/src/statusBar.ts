/**
 * The status bar item naming the Python that runs the server and whether it has torch (which
 * computes tensor values; else numpy, else none): "Python 3.11 · torch 2.13". Its tooltip says
 * where that Python came from; clicking it offers to choose another, see the log or restart. A
 * server that could not start shows as an error. The words come from serverStatus.ts.
 */
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import { type ServerStatus, statusText } from './serverStatus';

const ACTIONS = [
  { label: '$(gear) Set pthscope.interpreter…', run: () => vscode.commands.executeCommand('workbench.action.openSettings', 'pthscope.interpreter') },
  { label: '$(output) Show Log', run: () => vscode.commands.executeCommand('pthscope.showLog') },
  { label: '$(debug-restart) Restart Server', run: () => vscode.commands.executeCommand('pthscope.restartServer') },
];

export class InterpreterStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('pthscope.interpreter', vscode.StatusBarAlignment.Right, 100);
  private readonly disposables: vscode.Disposable[] = [];
  private headline = '';

  constructor(ctx: Ctx) {
    this.item.name = 'pthscope Python';
    this.item.command = 'pthscope.statusActions';
    this.disposables.push(
      this.item,
      ctx.onDidChangeStatus((status) => { this.update(status); }),
      vscode.commands.registerCommand('pthscope.statusActions', async () => {
        const picked = await vscode.window.showQuickPick(ACTIONS, { placeHolder: this.headline });
        await picked?.run();
      }),
    );
    this.update(ctx.status);
    this.item.show();
  }

  private update(status: ServerStatus): void {
    const shown = statusText(status);
    this.item.text = shown.text;
    this.item.tooltip = shown.tooltip;
    this.item.backgroundColor = shown.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.headline = shown.tooltip.split('\n')[0] ?? shown.text;
    this.item.accessibilityInformation = { label: this.headline };
  }

  dispose(): void {
    vscode.Disposable.from(...this.disposables.splice(0)).dispose();
  }
}
