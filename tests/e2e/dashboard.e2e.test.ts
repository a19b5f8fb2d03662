/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against the
 * built `ix start` on PostgreSQL with seeded jobs. Saves a PNG of each page under test-results/.
 */
import { mkdirSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../src/api/index.js';
import { IxClient } from '../../src/client/index.js';
import { loadConfig } from '../../src/config.js';
import { type RunningIx, startIx } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { finishedJobs } from '../support/jobs.js';
import { silentLogger } from '../support/worker.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const SHOTS = 'test-results';
const ADMIN_KEY = 'dashboard-operator-key-0123456789';
const CLIENT_KEY = 'dashboard-acme-key-0123456789';

// The tests follow one another, against one ix and its seeded jobs.
const db = useTestDatabase({ truncate: false });
let ix: RunningIx;
let browser: Browser;
let failedRequestId: string;
/** Console errors and uncaught exceptions, by page, of every page opened. */
const consoleErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  // Seeded before ix starts, so its worker cannot take them meanwhile: 3 done, 2 failed.
  const ended = await finishedJobs(db.pool, null, ['done', 'error', 'done', 'error', 'done']);
  failedRequestId = ended[1]!.request_id;
  ix = await startIx({
    IX_POSTGRES_URL: db.url,
    IX_API_KEYS: `acme=${CLIENT_KEY}`,
    IX_ADMIN_KEYS: `alice=${ADMIN_KEY}`,
    IX_WORKER_POLL_INTERVAL_MS: '200',
  });
  // Two jobs waiting for later, through the typed client: they stay pending.
  const client = new IxClient({ baseUrl: ix.address, apiKey: CLIENT_KEY });
  for (let i = 0; i < 2; i++) await client.submit(makeRequest(), null, { delaySeconds: 3_600 });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await browser?.close();
  await ix?.stop();
});

/** Chromium's own line for a response refused with 401 or 403 (the page itself logs nothing). */
const REFUSED = /^Failed to load resource: the server responded with a status of 40[13] /;

/**
 * A fresh browser context (its own session storage) and page. `refusals`: where the responses a
 * wrong key is meant to get are collected instead, as Chromium logs each as an error.
 */
async function open(
  options: Parameters<Browser['newContext']>[0] = {},
  refusals: string[] | null = null,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (refusals && REFUSED.test(message.text())) refusals.push(message.text());
    else consoleErrors.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`${page.url()}: ${error.message}`));
  return { context, page };
}

async function logIn(page: Page, key: string): Promise<void> {
  await page.goto(`${ix.address}/dashboard`);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Log in' }).click();
}

async function count(sql: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(sql);
  return rows[0]!.n;
}

describe('the dashboard', () => {
  it('refuses a wrong key and a client key, and asks again', async () => {
    const refusals: string[] = [];
    const { context, page } = await open({}, refusals);
    await page.goto(`${ix.address}/dashboard`);
    await page.screenshot({ path: `${SHOTS}/dashboard-login.png` });
    await logIn(page, 'not-a-key');
    await expect.poll(() => page.getByTestId('login-error').textContent()).toContain('unknown API key');
    await logIn(page, CLIENT_KEY);
    await expect.poll(() => page.getByTestId('login-error').textContent()).toContain('client key');
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await context.close();
  });

  it('logs in and shows the overview as the database has it, the key in the session alone', async () => {
    const { context, page } = await open();
    await logIn(page, ADMIN_KEY);
    await page.getByTestId('pending-count').waitFor();
    const pending = await count(`SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'pending'`);
    const running = await count(`SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'running'`);
    const failed = await count(`SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'error'`);
    expect(pending).toBe(2);
    expect(await page.getByTestId('pending-count').textContent()).toBe(String(pending));
    expect(await page.getByTestId('running-count').textContent()).toBe(String(running));
    expect(await page.getByTestId('failed-count').textContent()).toBe(String(failed));
    expect(await page.getByTestId('submitted-count').textContent()).toBe('7');
    // The workers table lists ix start's worker.
    await expect.poll(() => page.getByRole('table', { name: 'Workers' }).locator('tbody tr').count()).toBe(1);
    expect(page.url()).not.toContain(ADMIN_KEY);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.evaluate("sessionStorage.getItem('ix-admin-key')")).toBe(ADMIN_KEY);
    await page.screenshot({ path: `${SHOTS}/dashboard-overview.png`, fullPage: true });

    await page.getByRole('link', { name: 'Clients' }).click();
    await page.getByRole('table', { name: 'Clients' }).waitFor();
    expect(
      await page.getByRole('table', { name: 'Clients' }).locator('tbody tr').first().textContent(),
    ).toContain('acme');
    await page.screenshot({ path: `${SHOTS}/dashboard-clients.png`, fullPage: true });
    await context.close();
  });

  it('searches by request_id, opens the failed job, retries it and sees it run', async () => {
    const { context, page } = await open();
    await logIn(page, ADMIN_KEY);
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByLabel('request_id').fill(failedRequestId);
    await page.getByRole('button', { name: 'Search' }).click();
    // The filters are in the URL, so the search can be shared.
    await expect.poll(() => new URL(page.url()).hash).toBe(`#/jobs?request_id=${failedRequestId}`);
    const rows = page.getByRole('table', { name: 'Jobs' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('error');
    await page.screenshot({ path: `${SHOTS}/dashboard-jobs.png`, fullPage: true });

    await rows.first().getByRole('link').click();
    await page.getByTestId('job-request-id').waitFor();
    expect(await page.getByTestId('job-request-id').textContent()).toBe(failedRequestId);
    expect(await page.getByRole('heading', { name: 'Timeline' }).isVisible()).toBe(true);
    await page.screenshot({ path: `${SHOTS}/dashboard-job-failed.png`, fullPage: true });

    await page.getByRole('button', { name: 'Retry' }).click();
    await page.getByRole('dialog').getByText('fresh budget').waitFor();
    await page.getByRole('button', { name: 'Confirm' }).click();
    // ix's worker runs it (the echo pipeline); the page follows the job until it ends.
    await expect.poll(() => page.locator('h1 .badge').textContent(), { timeout: 20_000 }).toBe('done');
    expect(await page.locator('.timeline').textContent()).toContain('retry by alice');
    await page.screenshot({ path: `${SHOTS}/dashboard-job-retried.png`, fullPage: true });
    await context.close();
  });

  it('is usable at phone width and in the dark theme', async () => {
    for (const [name, options] of [
      ['phone', { viewport: { width: 390, height: 844 } }],
      ['dark', { colorScheme: 'dark' as const }],
    ] as const) {
      const { context, page } = await open(options);
      await logIn(page, ADMIN_KEY);
      await page.getByTestId('pending-count').waitFor();
      // Nothing wider than the screen: no sideways scrolling of the page.
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      const background = await page.evaluate('getComputedStyle(document.body).backgroundColor');
      if (name === 'dark') expect(background).toBe('rgb(13, 17, 23)');
      else expect(background).toBe('rgb(255, 255, 255)');
      await page.screenshot({ path: `${SHOTS}/dashboard-overview-${name}.png`, fullPage: true });
      await context.close();
    }
  });

  it('is open without keys (loopback only), as the API is', async () => {
    const config = loadConfig({ IX_HOST: '127.0.0.1', IX_PORT: '0' });
    const openIx = await startApi({ pool: db.pool, connectionString: db.url, config, logger: silentLogger });
    try {
      const { context, page } = await open();
      await page.goto(`${openIx.address}/dashboard`);
      await page.getByTestId('pending-count').waitFor();
      expect(await page.getByLabel('Admin key').count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Log out' }).isVisible()).toBe(false);
      await context.close();
    } finally {
      await openIx.close();
    }
  });

  it('logged no console error on any page', () => {
    expect(consoleErrors).toEqual([]);
  });
});
