/**
 * The checkpoint page's HTML shell: a strict CSP (default-src 'none', nonce scripts and styles),
 * the page's stylesheet (media/page.css) and script (out/page.js, bundled from media/page/) inlined
 * under that nonce (no fetch through the webview's resource loader before the page can say
 * `ready`: the cold start), the codicon font loaded after them. All content arrives later by
 * message.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as vscode from 'vscode';

export function pageResourceRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'client', 'media'), vscode.Uri.joinPath(extensionUri, 'client', 'out')];  // out: codicons, diff.js
}

const assets = new Map<string, string>();

/** A file of the extension's client/ folder, read once (the extension's own files never change while it runs). */
function clientFile(extensionUri: vscode.Uri, ...parts: string[]): string {
  const file = vscode.Uri.joinPath(extensionUri, 'client', ...parts).fsPath;
  let text = assets.get(file);
  if (text === undefined) {
    text = fs.readFileSync(file, 'utf8');
    assets.set(file, text);
  }
  return text;
}

export function pageHtml(webview: vscode.Webview, extensionUri: vscode.Uri, fileName: string): string {
  const asset = (...parts: string[]): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'client', ...parts)).toString();
  const nonce = randomBytes(16).toString('base64');
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
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
  <style nonce="${nonce}">${clientFile(extensionUri, 'media', 'page.css')}</style>
  <title>${escapeHtml(fileName)}</title>
</head>
<body>
  <main id="app" aria-busy="true">
    <header class="title">
      <span class="codicon codicon-file-binary" aria-hidden="true"></span>
      <h1 id="file-name">${escapeHtml(fileName)}</h1>
      <span id="format" class="badge"></span>
    </header>
    <div id="status" class="page-status" role="status"><span class="status-text">Reading the checkpoint… nothing in it is executed.</span></div>
  </main>
  <script nonce="${nonce}">${clientFile(extensionUri, 'out', 'page.js')}</script>
  <link href="${asset('out', 'codicons', 'codicon.css')}" rel="stylesheet">
</body>
</html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
