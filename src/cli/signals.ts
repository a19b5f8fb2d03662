/**
 * Resolves on the first SIGTERM or SIGINT. Call it before starting anything, so a signal during
 * start-up still leads to an orderly stop instead of Node's default exit (which would leave an
 * embedded PostgreSQL running).
 *
 * Later signals are acknowledged and ignored, for the same reason: Ctrl-C under `npm start`
 * reaches ix twice (from the terminal, and forwarded by npm), and an impatient second Ctrl-C
 * must not skip stopping PostgreSQL. Signal listeners do not keep the process alive.
 */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        process.stderr.write(`ix: ${signal} received, already stopping\n`);
        return;
      }
      received = true;
      process.stderr.write(`ix: ${signal} received, stopping\n`);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
