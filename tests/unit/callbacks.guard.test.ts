import { describe, expect, it } from 'vitest';
import { checkCallbackUrl, type Resolver, refusedRange } from '../../src/callbacks/index.js';

// The one rule for which addresses are never called back, both at submit time (literal hosts,
// callbackUrlProblem) and at delivery (every resolved address, checkCallbackUrl).
describe('refusedRange', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['fe80::1', 'linkLocal'],
    ['fd00::1', 'uniqueLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fc12::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['192.0.2.1', 'reserved'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:a00:1', 'private'],
    ['::ffff:10.0.0.1', 'private'],
    ['64:ff9b::a00:1', 'rfc6052'],
    ['2002:a00:1::', '6to4'],
    ['fe80::1%eth0', 'linkLocal'],
    // IPv4-compatible IPv6 (::/96, deprecated by RFC 4291), whatever IPv4 address it carries;
    // the dotted form is how libuv prints such an address when a name resolves to one.
    ['::7f00:1', 'ipv4Compatible'],
    ['::a9fe:a9fe', 'ipv4Compatible'],
    ['::127.0.0.1', 'ipv4Compatible'],
    ['::808:808', 'ipv4Compatible'],
    ['::8.8.8.8', 'ipv4Compatible'],
    ['0:0:0:0:0:0:a00:1', 'ipv4Compatible'],
    ['not-an-ip', 'not an IP address'],
    ['example.com', 'not an IP address'],
    ['', 'not an IP address'],
  ])('refuses %s (%s)', (address, range) => {
    expect(refusedRange(address)).toBe(range);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '2606:4700:4700::1111',
    '2a00:1450:4001::200e',
    '2001:4860:4860::8888',
    '::ffff:8.8.8.8',
  ])('allows public unicast %s', (address) => {
    expect(refusedRange(address)).toBeNull();
  });
});

describe('checkCallbackUrl', () => {
  const resolveTo =
    (...addresses: string[]): Resolver =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

  it('refuses schemes other than http and https, and unparsable URLs, for good', async () => {
    for (const url of ['file:///etc/passwd', 'gopher://example.com/', 'ftp://example.com/', 'not a url']) {
      const result = await checkCallbackUrl(url, { allowPrivate: true });
      expect(result).toMatchObject({ ok: false, retryable: false });
    }
  });

  it('refuses literal private addresses, bracketed IPv6 and the decimal and octal forms URL normalises', async () => {
    for (const url of [
      'http://127.0.0.1/',
      'http://[::1]:8080/x',
      'http://169.254.169.254/latest/meta-data',
      'http://10.0.0.1/',
      'http://2130706433/',
      'http://0177.0.0.1/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::127.0.0.1]/',
      'http://[::a9fe:a9fe]/latest/meta-data',
    ]) {
      const result = await checkCallbackUrl(url, { allowPrivate: false, resolve: resolveTo('8.8.8.8') });
      expect(result, url).toMatchObject({ ok: false, retryable: false });
      if (!result.ok) expect(result.reason).toMatch(/SSRF guard/);
    }
  });

  it('refuses a host when any of its addresses is private, naming it', async () => {
    const result = await checkCallbackUrl('https://mixed.example/', {
      allowPrivate: false,
      resolve: resolveTo('8.8.8.8', '10.1.2.3'),
    });
    expect(result).toMatchObject({ ok: false, retryable: false });
    if (!result.ok) expect(result.reason).toMatch(/mixed\.example resolves to 10\.1\.2\.3 is private/);
  });

  it('refuses a name resolving to an IPv4-compatible address, even one carrying a public IPv4', async () => {
    for (const address of ['::127.0.0.1', '::8.8.8.8', '::a9fe:a9fe']) {
      const result = await checkCallbackUrl('https://compat.example/', {
        allowPrivate: false,
        resolve: resolveTo(address),
      });
      expect(result, address).toMatchObject({ ok: false, retryable: false });
      if (!result.ok) expect(result.reason).toContain(`${address} is ipv4Compatible`);
    }
  });

  it('passes a public host with the address to connect to; a lookup failure is retryable', async () => {
    const ok = await checkCallbackUrl('https://hooks.example/cb?x=1', {
      allowPrivate: false,
      resolve: resolveTo('2606:4700:4700::1111', '8.8.8.8'),
    });
    expect(ok).toMatchObject({
      ok: true,
      hostname: 'hooks.example',
      target: { address: '2606:4700:4700::1111' },
    });
    const failing: Resolver = async () => {
      throw new Error('getaddrinfo ENOTFOUND nowhere.example');
    };
    expect(
      await checkCallbackUrl('https://nowhere.example/', { allowPrivate: false, resolve: failing }),
    ).toMatchObject({
      ok: false,
      retryable: true,
    });
  });

  it('allows private addresses when told to, still pinning the resolved address', async () => {
    expect(
      await checkCallbackUrl('http://internal.example:9000/', {
        allowPrivate: true,
        resolve: resolveTo('10.0.0.7'),
      }),
    ).toMatchObject({ ok: true, target: { address: '10.0.0.7', family: 4 } });
  });
});
