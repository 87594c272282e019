// The run's clock inside the Worker: replaces globalThis.Date before any of
// the Worker's own modules run (launch.mjs imports this module first from the
// entry module it writes next to wrangler's build output).
//
// Virtual now = base + (real now - realBase) x speed, in ms since the Unix
// epoch: the same rule as the mock KV's clock (src/mockkv/clock.rs), anchored
// at the same instant, so Date.now(), new Date() and Date() in the Worker read
// the same time as KV TTLs and cron scheduledTime. The anchor can be moved
// (`setRunClock`), e.g. when a run starts its day with the load.
//
// Follows: Date.now(), new Date() with no arguments, Date() as a function.
// Does not follow: setTimeout/setInterval delays, performance.now(), Durable
// Object alarms (workerd schedules them on real time), request timestamps
// workerd itself writes.
//
// build.mjs writes a copy with the three anchor placeholders below replaced
// by the launcher's --clock numbers.

const RealDate = globalThis.Date;
const realNow = RealDate.now.bind(RealDate);
const anchor = { base: __KVCHAOS_BASE__, real: __KVCHAOS_REAL__, speed: __KVCHAOS_SPEED__ };

function now() {
  return Math.floor(anchor.base + (realNow() - anchor.real) * anchor.speed);
}

/** Move the clock: virtual `base` ms at real wall time `real` ms, `speed`x. */
export function setRunClock(base, real, speed) {
  if ([base, real, speed].every((n) => typeof n === "number" && Number.isFinite(n))) {
    Object.assign(anchor, { base, real, speed });
    return true;
  }
  return false;
}

const RunDate = new Proxy(RealDate, {
  construct(target, args, newTarget) {
    return Reflect.construct(target, args.length === 0 ? [now()] : args, newTarget === RunDate ? target : newTarget);
  },
  apply() {
    return new RealDate(now()).toString();
  },
  get(target, prop, receiver) {
    if (prop === "now") return now;
    return Reflect.get(target, prop, receiver);
  },
});

globalThis.Date = RunDate;
