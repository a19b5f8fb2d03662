import { describe, expect, it } from 'vitest';
import { callbackUrlProblem } from '../../src/submit/index.js';

describe('callbackUrlProblem', () => {
  it('accepts public http(s) URLs', () => {
    expect(callbackUrlProblem('https://example.com/hook?x=1', false)).toBeNull();
    expect(callbackUrlProblem('http://8.8.8.8:8080/', false)).toBeNull();
  });

  it('judges the normalized host, so odd IPv4 spellings of loopback are caught', () => {
    expect(callbackUrlProblem('http://0x7f000001/', false)).toMatch(/non-public/);
    expect(callbackUrlProblem('http://2130706433/', false)).toMatch(/non-public/);
  });

  // Which addresses are refused is the guard's rule (tests/unit/callbacks.guard.test.ts); these
  // show the submit-time check applies it to literal hosts, bracketed IPv6 included.
  it.each([
    'http://127.0.0.1/',
    'http://[::1]:8080/',
    'http://[::ffff:10.0.0.1]/',
    'http://[::127.0.0.1]/',
    'http://[::a9fe:a9fe]/latest/meta-data',
    'http://localhost/',
    'http://api.localhost/',
  ])('refuses the non-public host of %s', (url) => {
    expect(callbackUrlProblem(url, false)).toMatch(/non-public/);
  });

  it('leaves names to the delivery-time guard, which resolves them', () => {
    expect(callbackUrlProblem('https://hooks.example/', false)).toBeNull();
    expect(callbackUrlProblem('http://[2001:4860:4860::8888]/', false)).toBeNull();
  });

  it('allows private addresses only when told to, and never other schemes', () => {
    expect(callbackUrlProblem('http://127.0.0.1/', true)).toBeNull();
    expect(callbackUrlProblem('file:///etc/passwd', true)).toMatch(/http\(s\)/);
  });
});
