/**
 * Creates the language client that runs the server on stdio, started as launch.ts says: from a
 * script in the extension's folder, isolated, so nothing from a workspace is on its path.
 */
import * as vscode from 'vscode';
import {
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
} from 'vscode-languageclient/node';
import type { ServerLaunch } from './launch';

export function createLanguageClient(launch: ServerLaunch, log: vscode.LogOutputChannel): LanguageClient {
  const serverOptions: ServerOptions = {
    command: launch.command,
    // No `transport`: stdio pipes without the `--stdio` argument the client would append.
    args: launch.args,
    options: { env: launch.env, cwd: launch.cwd },
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
