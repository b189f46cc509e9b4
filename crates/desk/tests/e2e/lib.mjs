// Shared helpers of the desk's browser tests: start the system Chromium
// through playwright-core with a fresh profile and the flags that keep it
// off the network, open the desk, collect console and CSP errors.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Names the scenarios give apps and the note they add; after_restart.mjs
 * checks them. */
export const NAMES = { hostile: 'Suspicious notes', editor: 'My editor' };
export const NOTE = 'Buy oat milk — 2 litres <b>not bold</b>';

/** The Chromium the tests drive (Debian's package; `.ci/run` installs it). */
export const CHROMIUM = process.env.POLA_CHROMIUM || '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Starts Chromium with a fresh user-data folder; returns the context. */
export async function startBrowser(outDir) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run .ci/run (it installs Debian's chromium)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pola-desk-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: false,
  });
  const done = async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, done, outDir };
}

/** Opens the desk at `url` in a new page; `page.problems` collects
 * console errors, CSP violations and uncaught exceptions. */
export async function openDesk(context, url) {
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    // A 4xx answer the page expects (a refused package) is logged by
    // Chromium as "Failed to load resource"; the page shows it itself.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      page.problems.push(`console: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => page.problems.push(`exception: ${e.message}`));
  await page.goto(url);
  await page.waitForSelector('#app-icons li.app');
  return page;
}

/** Fails with `what` unless `cond`. */
export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** Waits until `fn()` is truthy (polling), or fails with `what`. */
export async function eventually(fn, what, ms = 10000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out: ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** The window frame of the app named `pet` (its title). */
export function windowOf(page, pet) {
  return page.locator('section.window').filter({ has: page.locator('.titlebar .title', { hasText: new RegExp(`^${escapeRe(pet)}$`) }) });
}

/** The desk icon (the launch button) of the app named `pet`. */
export function iconOf(page, pet) {
  return page.locator('#app-icons li.app').filter({ has: page.locator('.pet', { hasText: new RegExp(`^${escapeRe(pet)}$`) }) });
}

export function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Saves a screenshot `name`.png under `outDir`. */
export async function shot(page, outDir, name) {
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}
