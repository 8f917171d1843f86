/** A positive number from a flag, else from an environment variable, else the default; exit 2 when invalid. */
export function numberOption(
  flag: string | undefined,
  env: string,
  fallback: number,
  integer: boolean,
  usage: string,
): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    process.stderr.write(`invalid value '${raw}' (${env})\n${usage}\n`);
    process.exit(2);
  }
  return value;
}
