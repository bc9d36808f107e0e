/**
 * Creates the language client that runs `<python> -m pthscope lsp` on stdio, with the bundled
 * pthscope package and pygls (+ pure-Python deps) in front of the user's PYTHONPATH.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
} from 'vscode-languageclient/node';
import { serverPythonPath } from './interpreter';

/**
 * Folders that hold the server code. A packaged extension ships `bundled/` (libs + pthscope);
 * a development checkout without it runs the repository's `server/` against the user's pygls.
 */
export function serverCodeDirs(extensionPath: string): string[] {
  const bundled = path.join(extensionPath, 'bundled');
  return fs.existsSync(bundled) ? [path.join(bundled, 'libs'), bundled] : [path.join(extensionPath, 'server')];
}

export function createLanguageClient(python: string, extensionPath: string, log: vscode.LogOutputChannel): LanguageClient {
  const env = {
    ...process.env,
    PYTHONPATH: serverPythonPath(serverCodeDirs(extensionPath), process.env.PYTHONPATH),
    PYTHONUNBUFFERED: '1',
    PYTHONIOENCODING: 'utf-8',
  };
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? extensionPath;
  const serverOptions: ServerOptions = {
    command: python,
    // No `transport`: stdio pipes without the `--stdio` argument the client would append.
    args: ['-m', 'pthscope', 'lsp'],
    options: { env, cwd },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file', language: 'python' }],
    outputChannel: log,
    traceOutputChannel: log,
    // The extension shows its own, actionable messages when the server cannot start.
    revealOutputChannelOn: RevealOutputChannelOn.Never,
  };
  return new LanguageClient('pthscope', 'pthscope', serverOptions, clientOptions);
}
