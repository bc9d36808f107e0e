/**
 * The checkpoint page's HTML shell: a strict CSP (default-src 'none', nonce scripts), theme
 * stylesheets and the page script from media/. All content arrives later by message.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

export function pageResourceRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'client', 'media'), vscode.Uri.joinPath(extensionUri, 'client', 'out', 'codicons')];
}

export function pageHtml(webview: vscode.Webview, extensionUri: vscode.Uri, fileName: string): string {
  const asset = (...parts: string[]): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'client', ...parts)).toString();
  const nonce = randomBytes(16).toString('base64');
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
    `img-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${csp}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <link href="${asset('out', 'codicons', 'codicon.css')}" rel="stylesheet">
  <link href="${asset('media', 'page.css')}" rel="stylesheet">
  <title>${escapeHtml(fileName)}</title>
</head>
<body>
  <main id="app" aria-busy="true">
    <header class="title">
      <span class="codicon codicon-file-binary" aria-hidden="true"></span>
      <h1 id="file-name">${escapeHtml(fileName)}</h1>
      <span id="format" class="badge"></span>
    </header>
    <p id="status" role="status">Reading the checkpoint… nothing in it is executed.</p>
  </main>
  <script nonce="${nonce}" src="${asset('media', 'page.js')}"></script>
</body>
</html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
