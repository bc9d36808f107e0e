/**
 * The extension's settings behind typed getters, and which of them need a server restart.
 */
import * as vscode from 'vscode';
import { expandInterpreterSetting } from './interpreter';

export class Config {
  static readonly section = 'pthscope';
  /** Settings whose change restarts the language server. */
  static readonly restartServerOn = ['pthscope.interpreter'];

  /** `pthscope.interpreter`, with `~` and `${workspaceFolder}` expanded; "" when unset. */
  get interpreter(): string {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return expandInterpreterSetting(this.get<string>('interpreter', ''), folder);
  }

  get treePageSize(): number {
    return this.get<number>('tree.pageSize', 500);
  }

  needsServerRestart(event: vscode.ConfigurationChangeEvent): boolean {
    return Config.restartServerOn.some((setting) => event.affectsConfiguration(setting));
  }

  /** Reads a setting; null (a user clearing a value in JSON) counts as unset. */
  private get<T>(key: string, fallback: T): T {
    const value = vscode.workspace.getConfiguration(Config.section).get<T | null>(key);
    return value ?? fallback;
  }
}
