/** `ix clients` argument parsing: what each command takes, and the usage errors for the rest. */
import { describe, expect, it } from 'vitest';
import { describeClients, parseClientsArgs } from '../../src/cli/clients.js';
import { UsageError } from '../../src/cli/usage.js';

const parse = (line: string) => parseClientsArgs(line.split(' ').filter((a) => a !== ''));

describe('parseClientsArgs', () => {
  it.each([
    ['add acme', { action: 'add', clientId: 'acme', settings: {} }],
    [
      'add acme --weight 5 --max-running 3 --max-pending 100 --rate 2.5',
      {
        action: 'add',
        clientId: 'acme',
        settings: { weight: 5, maxRunning: 3, maxPending: 100, ratePerSecond: 2.5 },
      },
    ],
    ['list', { action: 'list', json: false }],
    ['list --json', { action: 'list', json: true }],
    [
      'set acme --max-pending default --rate default --max-running 7',
      { action: 'set', clientId: 'acme', settings: { maxPending: null, ratePerSecond: null, maxRunning: 7 } },
    ],
    ['key add acme', { action: 'key add', clientId: 'acme' }],
    [
      'key revoke acme 0123456789AB',
      { action: 'key revoke', clientId: 'acme', keyId: '0123456789ab', force: false },
    ],
    [
      'key revoke acme 0123456789ab --force',
      { action: 'key revoke', clientId: 'acme', keyId: '0123456789ab', force: true },
    ],
    ['disable acme', { action: 'disable', clientId: 'acme' }],
    ['enable acme', { action: 'enable', clientId: 'acme' }],
  ])('%s', (line, expected) => {
    expect(parse(line)).toEqual(expected);
  });

  it.each([
    ['', /expects add, list, set, key, disable or enable/],
    ['remove acme', /unknown clients command "remove"/],
    ['add', /clients add takes a client id/],
    ['add a b', /unexpected "b"/],
    ['add acme --weight 0', /--weight takes a whole number from 1 to 1000/],
    ['add acme --weight 1001', /--weight takes a whole number from 1 to 1000/],
    ['add acme --weight default', /--weight takes a whole number/],
    ['add acme --max-pending 1.5', /--max-pending takes a whole number/],
    ['add acme --max-running 0', /--max-running takes a whole number from 1/],
    ['add acme --rate 0', /--rate takes a number of submits a second above 0/],
    ['add acme --rate=-1', /--rate takes/],
    ['add acme --rate fast', /--rate takes/],
    ['set acme', /clients set takes at least one of/],
    ['list --weight 2', /clients list takes no --weight/],
    ['disable acme --force', /takes no --force/],
    ['add acme --json', /takes no --json/],
    ['key acme', /clients key expects "add" or "revoke"/],
    ['key revoke acme', /a client id and a key id \(12 hex digits/],
    ['key revoke acme ix_abcdefghijkl', /12 hex digits/],
    ['key revoke acme 0123456789abc', /12 hex digits/],
    [`add ${'x'.repeat(129)}`, /is not a client id/],
  ])('refuses "%s"', (line, message) => {
    expect(() => parse(line)).toThrow(UsageError);
    expect(() => parse(line)).toThrow(message);
  });

  it('refuses an unknown option (as node:util parseArgs does: exit 2 by its code)', () => {
    expect(() => parse('add acme --colour red')).toThrow(/Unknown option '--colour'/);
  });
});

describe('describeClients', () => {
  it('one line a client, defaults named, its key ids joined', () => {
    const text = describeClients([
      {
        clientId: 'acme',
        weight: 2,
        maxRunning: null,
        maxPending: 10,
        ratePerSecond: 1.5,
        disabled: true,
        createdAt: new Date(),
        updatedAt: new Date(),
        keys: [
          { keyId: 'aaaaaaaaaaaa', createdAt: new Date() },
          { keyId: 'bbbbbbbbbbbb', createdAt: new Date() },
        ],
      },
    ]);
    expect(text.split('\n')).toEqual([
      'CLIENT  WEIGHT  MAX_RUNNING  MAX_PENDING  RATE  STATE     KEYS',
      'acme    2       default      10           1.5   disabled  aaaaaaaaaaaa,bbbbbbbbbbbb',
    ]);
    expect(describeClients([])).toMatch(/no clients/);
  });
});
