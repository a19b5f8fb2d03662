import { createHmac, randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { sign, signatureHeaders, webhookId } from '../../src/callbacks/index.js';

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

describe('Standard Webhooks signing', () => {
  it('matches the spec: v1, base64 HMAC-SHA256 of id.timestamp.body under the decoded secret', () => {
    const key = Buffer.alloc(32, 7);
    const body = Buffer.from('{"a":"é"}');
    const expected = createHmac('sha256', key).update(`msg_1.1700000000.${body.toString()}`).digest('base64');
    expect(sign(`whsec_${key.toString('base64')}`, 'msg_1', 1700000000, body)).toBe(`v1,${expected}`);
  });

  it('standardwebhooks verifies what it signs, with each of two rotating secrets', () => {
    const [newest, previous] = [newSecret(), newSecret()];
    const body = Buffer.from(JSON.stringify({ job_id: 'x', ünïcode: '✓' }));
    const now = Math.floor(Date.now() / 1000);
    const headers = signatureHeaders([newest, previous], webhookId('x'), now, body);
    expect(headers['webhook-id']).toBe('msg_x');
    expect(headers['webhook-timestamp']).toBe(String(now));
    expect(headers['webhook-signature']?.split(' ')).toHaveLength(2);
    for (const secret of [newest, previous]) {
      expect(new Webhook(secret).verify(body.toString(), headers)).toEqual(JSON.parse(body.toString()));
    }
    expect(() => new Webhook(newSecret()).verify(body.toString(), headers)).toThrow();
    const tampered = Buffer.from(body.toString().replace('✓', 'x'));
    expect(() => new Webhook(newest).verify(tampered.toString(), headers)).toThrow();
  });

  it('without a secret, sends id and timestamp but no signature', () => {
    expect(signatureHeaders([], 'msg_1', 5, Buffer.from('{}'))).toEqual({
      'webhook-id': 'msg_1',
      'webhook-timestamp': '5',
    });
  });
});
