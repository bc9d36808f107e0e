/**
 * The side panel's checkpoint tree: the current checkpoint (the one in the active page), its
 * contents by role (the root's counts, as the server sends them) at the top, then its nodes,
 * expanded lazily one page of children at a time through `pthscope/children`. How a node looks
 * is decided in treeModel.ts; this module only keeps the loaded nodes and talks to VS Code.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import * as protocol from './protocol';
import { formatBytes, formatExact } from './format';
import type { NodeSummary, OpenResult, PathElement, ProblemJson, RoleTableJson } from './protocol';
import {
  childTowards, nodeId, nodeLook, nodeTooltipMarkdown, problemText, remainingChildren, roleRows, roleTooltipMarkdown, tensorTooltipMarkdown,
  visibleText, type RoleRow,
} from './treeModel';

export class CheckpointNode extends vscode.TreeItem {
  constructor(readonly file: string, readonly summary: NodeSummary, readonly parent: CheckpointNode | undefined) {
    const look = nodeLook(summary);
    super(look.label, look.expandable ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    this.id = nodeId(file, summary.path);
    this.description = look.description;
    this.iconPath = new vscode.ThemeIcon(look.icon.id, look.icon.color ? new vscode.ThemeColor(look.icon.color) : undefined);
    this.contextValue = look.contextValue;
    // Tensor tooltips are resolved on hover (resolveTreeItem) to include tied storage.
    this.tooltip = summary.tensor ? undefined : new vscode.MarkdownString(nodeTooltipMarkdown(summary));
    this.accessibilityInformation = { label: `${look.label}, ${look.description}` };
  }
}

export class LoadMoreNode extends vscode.TreeItem {
  constructor(readonly file: string, readonly parent: CheckpointNode | undefined, remaining: number, pageSize: number) {
    super(`Load ${Math.min(remaining, pageSize).toLocaleString('en-US')} more…`, vscode.TreeItemCollapsibleState.None);
    this.description = `${remaining.toLocaleString('en-US')} not shown`;
    this.iconPath = new vscode.ThemeIcon('ellipsis');
    this.contextValue = 'pthscope.loadMore';
    this.command = { command: 'pthscope.loadMore', title: 'Load More', arguments: [this] };
  }
}

/** "Contents": the file's tensors by role, above its tree. */
export class ContentsNode extends vscode.TreeItem {
  readonly parent = undefined;

  constructor(readonly file: string, result: OpenResult, readonly counts: RoleTableJson) {
    super('Contents', vscode.TreeItemCollapsibleState.Expanded);
    this.id = `${file}\u0000contents`;
    const tensors = result.summary.tensors;
    this.description = `${formatExact(tensors)} ${tensors === 1 ? 'tensor' : 'tensors'} · ${formatBytes(result.summary.tensor_bytes)}`;
    this.iconPath = new vscode.ThemeIcon('layers');
    this.contextValue = 'pthscope.contents';
    this.accessibilityInformation = { label: `Contents, ${this.description}` };
  }
}

export class RoleNode extends vscode.TreeItem {
  constructor(row: RoleRow, readonly parent: ContentsNode) {
    super(row.label, vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.file}\u0000role\u0000${row.role}`;
    this.description = row.description;
    this.iconPath = new vscode.ThemeIcon(row.icon);
    this.tooltip = new vscode.MarkdownString(roleTooltipMarkdown(row, parent.counts));
    this.contextValue = `pthscope.role.${row.role}`;
    this.accessibilityInformation = { label: `${row.label}, ${row.description}` };
  }
}

export class ProblemNode extends vscode.TreeItem {
  constructor(problem: ProblemJson, severity: 'error' | 'warning', readonly parent?: CheckpointNode) {
    super(problemText(problem), vscode.TreeItemCollapsibleState.None);
    this.description = problem.kind;
    this.iconPath = new vscode.ThemeIcon(severity, new vscode.ThemeColor(severity === 'error' ? 'errorForeground' : 'editorWarning.foreground'));
    this.tooltip = new vscode.MarkdownString().appendText(`${problem.kind}: ${visibleText(problem.message)}${problem.where ? `\nwhere: ${visibleText(problem.where)}` : ''}`);
    this.contextValue = `pthscope.${severity}`;
  }
}

export type TreeNode = ContentsNode | RoleNode | CheckpointNode | LoadMoreNode | ProblemNode;

interface LoadedChildren {
  nodes: CheckpointNode[];
  total: number;
}

const ROOT_PATH: PathElement[] = [];

export class CheckpointTree implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;
  readonly view: vscode.TreeView<TreeNode>;
  private checkpoint: OpenResult | undefined;
  private readonly loaded = new Map<string, LoadedChildren>();

  constructor(private readonly ctx: Ctx) {
    this.view = vscode.window.createTreeView('pthscope.tree', { treeDataProvider: this, showCollapseAll: true });
  }

  get current(): OpenResult | undefined {
    return this.checkpoint;
  }

  /** Shows `result` (a `pthscope/open` answer); the tree forgets what it loaded for another file. */
  show(result: OpenResult): void {
    if (this.checkpoint === result) {
      return;
    }
    this.checkpoint = result;
    // Python files link to the checkpoint on show too (hovers, fixes); nothing to wait for.
    void this.ctx.request(protocol.setActiveCheckpoint, { file: result.file }).catch(() => undefined);
    this.loaded.clear();
    if (result.root) {
      this.loaded.set(nodeId(result.file, ROOT_PATH), { nodes: result.children.map((c) => new CheckpointNode(result.file, c, undefined)), total: result.root.child_count });
    }
    this.view.description = path.basename(result.file);
    void vscode.commands.executeCommand('setContext', 'pthscope.hasCheckpoint', true);
    this.changeEmitter.fire(undefined);
  }

  /** Forgets the loaded children and asks the server again. */
  refresh(): void {
    const file = this.checkpoint?.file;
    for (const key of this.loaded.keys()) {
      if (file && key !== nodeId(file, ROOT_PATH)) {
        this.loaded.delete(key);
      }
    }
    this.changeEmitter.fire(undefined);
  }

  getTreeItem(element: TreeNode): TreeNode {
    return element;
  }

  getParent(element: TreeNode): TreeNode | undefined {
    return element.parent;
  }

  async getChildren(element?: TreeNode): Promise<TreeNode[]> {
    const checkpoint = this.checkpoint;
    if (!checkpoint) {
      return [];
    }
    if (element === undefined) {
      const problems = [
        ...checkpoint.errors.map((p) => new ProblemNode(p, 'error')),
        ...checkpoint.warnings.map((p) => new ProblemNode(p, 'warning')),
      ];
      if (!checkpoint.root) {
        return problems;
      }
      const contents = checkpoint.root.counts ? [new ContentsNode(checkpoint.file, checkpoint, checkpoint.root.counts)] : [];
      return [...problems, ...contents, ...(await this.childrenWithLoadMore(checkpoint.file, undefined))];
    }
    if (element instanceof ContentsNode) {
      return roleRows(element.counts).map((row) => new RoleNode(row, element));
    }
    if (!(element instanceof CheckpointNode)) {
      return [];
    }
    try {
      return await this.childrenWithLoadMore(element.file, element);
    } catch (error) {
      return [new ProblemNode({ kind: 'request failed', message: error instanceof Error ? error.message : String(error), where: element.summary.key }, 'error', element)];
    }
  }

  async resolveTreeItem(item: vscode.TreeItem, element: TreeNode, token: vscode.CancellationToken): Promise<vscode.TreeItem> {
    if (element instanceof CheckpointNode && element.summary.tensor) {
      const tensor = element.summary.tensor;
      const details = await this.ctx.request(protocol.details, { file: element.file, path: element.summary.path }, token).catch(() => undefined);
      item.tooltip = new vscode.MarkdownString(tensorTooltipMarkdown(details?.node.tensor ?? tensor, details?.tied ?? tensor.shared_with,
        details?.node.scan ?? element.summary.scan));
    }
    return item;
  }

  /** Fetches the next page of `node`'s parent and shows it. */
  async loadMore(node: LoadMoreNode): Promise<void> {
    const loaded = this.loaded.get(nodeId(node.file, node.parent?.summary.path ?? ROOT_PATH));
    if (loaded) {
      await this.fetchPage(node.file, node.parent, loaded);
      this.changeEmitter.fire(node.parent);
    }
  }

  /** Expands the tree down to the node keyed `target` (loading pages as needed) and selects it. */
  async reveal(target: string): Promise<boolean> {
    const file = this.checkpoint?.file;
    if (!file) {
      return false;
    }
    let parent: CheckpointNode | undefined;
    for (;;) {
      const next = await this.findChildTowards(file, parent, target);
      if (!next) {
        return false;
      }
      parent = next;
      if (next.summary.key === target) {
        await this.view.reveal(next, { select: true, focus: true, expand: false });
        return true;
      }
    }
  }

  dispose(): void {
    this.view.dispose();
    this.changeEmitter.dispose();
  }

  private async findChildTowards(file: string, parent: CheckpointNode | undefined, target: string): Promise<CheckpointNode | undefined> {
    const loaded = await this.loadedChildren(file, parent);
    for (;;) {
      const match = childTowards(loaded.nodes.map((n) => n.summary), target);
      if (match || remainingChildren(loaded.nodes.length, loaded.total) === 0) {
        return loaded.nodes.find((n) => n.summary === match);
      }
      await this.fetchPage(file, parent, loaded);
    }
  }

  private async childrenWithLoadMore(file: string, parent: CheckpointNode | undefined): Promise<TreeNode[]> {
    const loaded = await this.loadedChildren(file, parent);
    const remaining = remainingChildren(loaded.nodes.length, loaded.total);
    return remaining > 0 ? [...loaded.nodes, new LoadMoreNode(file, parent, remaining, this.ctx.config.treePageSize)] : loaded.nodes;
  }

  private async loadedChildren(file: string, parent: CheckpointNode | undefined): Promise<LoadedChildren> {
    const key = nodeId(file, parent?.summary.path ?? ROOT_PATH);
    let loaded = this.loaded.get(key);
    if (!loaded) {
      loaded = { nodes: [], total: Number.POSITIVE_INFINITY };
      await this.fetchPage(file, parent, loaded);
      this.loaded.set(key, loaded);
    }
    return loaded;
  }

  private async fetchPage(file: string, parent: CheckpointNode | undefined, loaded: LoadedChildren): Promise<void> {
    const page = await this.ctx.request(protocol.children, {
      file,
      path: parent?.summary.path ?? ROOT_PATH,
      offset: loaded.nodes.length,
      limit: this.ctx.config.treePageSize,
    });
    loaded.nodes.push(...page.children.map((c) => new CheckpointNode(file, c, parent)));
    loaded.total = page.children.length === 0 ? loaded.nodes.length : page.total;
  }
}
