/** A job's event stream (GET /jobs/{id}/events), as the client reads it. */
import type { Job } from '../contracts/index.js';

/** One event of a job's stream: the whole job after a change, and what changed. */
export interface JobEvent {
  /** Grows with every change; what `events` resumes from after a dropped connection. */
  id: string;
  /** The job's new status, or `progress` for a progress report within a run. */
  type: Job['status'] | 'progress';
  job: Job;
}

/** The events of a text/event-stream body; comments (heartbeats) are skipped. */
export async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<JobEvent> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end = buffered.indexOf('\n\n');
    while (end >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      end = buffered.indexOf('\n\n');
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        const colon = line.indexOf(': ');
        if (line.startsWith(':') || colon < 0) continue;
        fields.set(line.slice(0, colon), line.slice(colon + 2));
      }
      const data = fields.get('data');
      if (data === undefined) continue;
      yield {
        id: fields.get('id') ?? '',
        type: (fields.get('event') ?? 'message') as JobEvent['type'],
        job: JSON.parse(data) as Job,
      };
    }
  }
}
