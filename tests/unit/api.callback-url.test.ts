import { describe, expect, it } from 'vitest';
import { callbackUrlProblem, isLoopbackHost, isNonPublicAddress } from '../../src/api/index.js';

describe('isNonPublicAddress', () => {
  it.each([
    '127.0.0.1',
    '127.8.9.10',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '169.254.169.254',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '100.64.0.1',
    '::1',
    '[::1]',
    '::',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
  ])('true for %s', (address) => {
    expect(isNonPublicAddress(address)).toBe(true);
  });

  it.each(['8.8.8.8', '93.184.216.34', '2606:4700:4700::1111', '[2001:4860:4860::8888]', 'example.com', ''])(
    'false for %s',
    (address) => {
      expect(isNonPublicAddress(address)).toBe(false);
    },
  );
});

describe('callbackUrlProblem', () => {
  it('accepts public http(s) URLs', () => {
    expect(callbackUrlProblem('https://example.com/hook?x=1', false)).toBeNull();
    expect(callbackUrlProblem('http://8.8.8.8:8080/', false)).toBeNull();
  });

  it('judges the normalized host, so odd IPv4 spellings of loopback are caught', () => {
    expect(callbackUrlProblem('http://0x7f000001/', false)).toMatch(/non-public/);
    expect(callbackUrlProblem('http://2130706433/', false)).toMatch(/non-public/);
  });

  it('allows private addresses only when told to, and never other schemes', () => {
    expect(callbackUrlProblem('http://127.0.0.1/', true)).toBeNull();
    expect(callbackUrlProblem('file:///etc/passwd', true)).toMatch(/http\(s\)/);
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['::1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.10', false],
    ['example.com', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});
