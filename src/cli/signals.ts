/**
 * Resolves on the first SIGTERM or SIGINT. Call it before starting anything, so a signal during
 * start-up still leads to an orderly stop instead of Node's default exit (which would leave an
 * embedded PostgreSQL running).
 */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
