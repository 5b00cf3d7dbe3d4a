/**
 * A fixed set of lanes (destination connections with their appliers) handed out one caller at
 * a time: `take` waits while every lane is busy, `give` hands a lane back to the longest waiter.
 */
export class LanePool<L> {
  private readonly free: L[] = [];
  private readonly waiting: Array<(lane: L) => void> = [];

  add(lane: L): void {
    this.give(lane);
  }

  take(): Promise<L> {
    const lane = this.free.pop();
    if (lane !== undefined) return Promise.resolve(lane);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(lane: L): void {
    const next = this.waiting.shift();
    if (next) next(lane);
    else this.free.push(lane);
  }
}
