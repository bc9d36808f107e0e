/**
 * The extension's settings behind typed getters, and which of them need a server restart.
 * In Restricted Mode the interpreter comes from user settings only (package.json lists it in
 * `restrictedConfigurations`; reading `globalValue` here makes sure of it).
 */
import * as vscode from 'vscode';
import { expandInterpreterSetting } from './interpreter';

const PAGE_SIZE = { fallback: 500, min: 10, max: 5000 };

export class Config {
  static readonly section = 'pthscope';
  /** Settings whose change restarts the language server. */
  static readonly restartServerOn = ['pthscope.interpreter'];

  /**
   * `pthscope.interpreter`, with `~` and `${workspaceFolder}` expanded; "" when unset. A workspace
   * value counts only when the workspace is trusted.
   */
  get interpreter(): string {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const value = vscode.workspace.isTrusted
      ? this.get<string>('interpreter', '')
      : vscode.workspace.getConfiguration(Config.section).inspect<string | null>('interpreter')?.globalValue ?? '';
    return typeof value === 'string' ? expandInterpreterSetting(value, folder) : '';
  }

  /** Whether `interpreter` comes from the user's (or a remote machine's) settings, not a workspace's. */
  get interpreterIsFromUserSettings(): boolean {
    const inspected = vscode.workspace.getConfiguration(Config.section).inspect<string | null>('interpreter');
    return !vscode.workspace.isTrusted || (!inspected?.workspaceValue && !inspected?.workspaceFolderValue);
  }

  /** Whether a `.bin` checkpoint that opens in the text editor is reopened in its page (tabs.ts). */
  get openBinFiles(): boolean {
    return this.get<unknown>('openBinFiles', true) !== false;
  }

  /** Clamped: the schema's bounds are not enforced when a settings file says otherwise. */
  get treePageSize(): number {
    const value = this.get<unknown>('tree.pageSize', PAGE_SIZE.fallback);
    return typeof value === 'number' && Number.isFinite(value)
      ? Math.min(PAGE_SIZE.max, Math.max(PAGE_SIZE.min, Math.floor(value)))
      : PAGE_SIZE.fallback;
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
