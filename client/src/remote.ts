/**
 * Remote windows (code-server, SSH, WSL, dev containers): the extension and its server run on
 * the remote machine, so a `pthscope.interpreter` from the user's settings (which apply in every
 * window; the setting is `window`-scoped and not synced) may name a Python of another machine.
 * Then the next source is used and the user is told, with the fix: a value in the Remote
 * settings applies to that machine only. Pure but for `vscode.env`.
 */
import * as vscode from 'vscode';

/** The kind of remote this window is ("ssh-remote", "wsl", "dev-container", a browser's code-server), or undefined when local. */
export function remoteWindowName(): string | undefined {
  if (vscode.env.remoteName) {
    return vscode.env.remoteName;
  }
  return vscode.env.uiKind === vscode.UIKind.Web ? 'a browser (code-server)' : undefined;
}

export interface Notice {
  message: string;
  /** What makes the notice the same one (shown once). */
  key: string;
  action: string;
  command: string;
}

export function settingElsewhereNotice(setting: string, remote: string, failures: readonly string[], using: string): Notice {
  const why = failures[0] ? ` (${failures[0]})` : '';
  return {
    message: `pthscope.interpreter in your user settings is ${setting}, which does not run in this remote window (${remote})${why}. `
      + `The server uses ${using} instead. To choose a Python on this machine, set pthscope.interpreter in the Remote settings.`,
    key: `remote-interpreter:${remote}:${setting}`,
    action: 'Open Remote Settings',
    command: 'workbench.action.openRemoteSettings',
  };
}
