/**
 * Marks of the first page's way to the screen after activation: activation, interpreter choice,
 * server start, webview boot, the open request, the first rows. Each mark is logged once, as
 * `startup: <mark> +<ms since activation> ms at <epoch ms>`, so that the log of a cold start
 * shows where the time went (benchmarks/bench_cold_start.mjs reads these lines). A mark may
 * carry the time it happened elsewhere (the webview's clock is the same wall clock). Pure: no
 * `vscode` import.
 */

export type StartupMark =
  | 'extension loaded'
  | 'activating'
  | 'activated'
  | 'interpreter chosen'
  | 'server spawning'
  | 'server started'
  | 'page opened'
  | 'webview loading'
  | 'webview ready'
  | 'checkpoint read'
  | 'summary received'
  | 'summary drawn'
  | 'summary shown'
  | 'first rows shown';

export class StartupTimeline {
  private readonly origin = Date.now();
  private readonly seen = new Set<StartupMark>();

  constructor(private readonly write: (line: string) => void) {}

  /** Logs `mark` the first time it happens (at `at`, epoch ms; default now); later ones are not the cold start. */
  mark(mark: StartupMark, at: number = Date.now()): void {
    if (this.seen.has(mark)) {
      return;
    }
    this.seen.add(mark);
    const time = Math.round(at);
    this.write(`startup: ${mark} +${time - this.origin} ms at ${time}`);
  }
}
