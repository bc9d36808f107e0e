/**
 * Which files a custom editor of ours opens by default, from the extension's manifest
 * (`contributes.customEditors[].selector[].filenamePattern`): the one list package.json keeps.
 * Pure (no `vscode` import), for node's test runner.
 */

interface ManifestEditor {
  viewType?: unknown;
  selector?: { filenamePattern?: unknown }[];
}

/** The `filenamePattern`s of the editor `viewType` in `manifest` (package.json's object). */
export function editorPatterns(manifest: unknown, viewType: string): string[] {
  const editors = (manifest as { contributes?: { customEditors?: ManifestEditor[] } } | undefined)?.contributes?.customEditors ?? [];
  return editors
    .filter((editor) => editor.viewType === viewType)
    .flatMap((editor) => editor.selector ?? [])
    .map((selector) => selector.filenamePattern)
    .filter((pattern): pattern is string => typeof pattern === 'string');
}

/** Whether `fileName` (a base name) matches a `*.ext` pattern, ignoring case as VS Code does. */
export function matchesEditorPattern(fileName: string, patterns: readonly string[]): boolean {
  const name = fileName.toLowerCase();
  return patterns.some((pattern) => pattern.startsWith('*') && !pattern.slice(1).includes('*')
    && name.endsWith(pattern.slice(1).toLowerCase()) && name.length > pattern.length - 1);
}
