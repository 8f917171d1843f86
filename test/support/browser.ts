import { access } from "node:fs/promises";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium: CI installs it (.ci/run); no test ever downloads a browser. */
export const CHROMIUM = process.env.HANGAR_TEST_CHROMIUM ?? "/usr/bin/chromium";

/** Flags that keep a headless chromium quiet on a machine without internet. */
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/**
 * Launches a real headless Chromium. Playwright gives each launch a fresh
 * temporary profile (user-data dir) and removes it on close; each
 * `browser.newContext()` is a separate cookie jar, i.e. another person.
 * A missing browser fails the test with a clear message (never a skip): the
 * browser tests are part of what CI proves.
 */
export async function launchBrowser(): Promise<Browser> {
  try {
    await access(CHROMIUM);
  } catch {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install Debian's (apt-get install -y chromium), as .ci/run does, or set HANGAR_TEST_CHROMIUM to one`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}
