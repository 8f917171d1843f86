/** Output of the `hangar` command: results on stdout (tables or JSON), status and progress on stderr. */

/** One JSON document on stdout (what --json prints). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One JSON value on one line (streams such as `logs --json -f`). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Rows as aligned columns under a header, on stdout. Missing values print as `-`. */
export function printTable(
  rows: Array<Record<string, string>>,
  columns: Array<{ key: string; header: string }>,
): void {
  const cells = [
    columns.map((c) => c.header),
    ...rows.map((row) =>
      columns.map((c) => (row[c.key] === undefined || row[c.key] === "" ? "-" : row[c.key]!)),
    ),
  ];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  const text = cells
    .map((line) =>
      line
        .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
  process.stdout.write(`${text}\n`);
}

/** Human-readable status on stderr, so stdout stays clean for --json and pipes. */
export function info(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** A timestamp as the tables show it: local date and time to the second. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(
    date.getMinutes(),
  )}:${pad(date.getSeconds())}`;
}

/** A command's result in human mode (stdout), such as "Deployment x deactivated". */
export function printLine(message: string): void {
  process.stdout.write(`${message}\n`);
}
