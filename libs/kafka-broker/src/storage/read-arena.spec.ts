import { ReadArena } from './read-arena';

// Sizes above Buffer's 4 KiB pool threshold, so that every allocation has its own ArrayBuffer.
const K = 8192;

describe('ReadArena', () => {
  it('hands out disjoint views of one buffer while it has room, then buffers of their own', () => {
    const arena = new ReadArena(10 * K, 100 * K);
    const a = arena.take(4 * K);
    const b = arena.take(6 * K);
    const c = arena.take(3 * K);
    a.fill(1);
    b.fill(2);
    c.fill(3);
    expect(a.buffer).toBe(b.buffer);
    expect([a[4 * K - 1], b[0], b[6 * K - 1]]).toEqual([1, 2, 2]);
    expect(c.buffer).not.toBe(a.buffer);
  });

  it('reuses its buffer after reset, grown to what the last fill asked for, up to its maximum', () => {
    const arena = new ReadArena(10 * K, 16 * K);
    const first = arena.take(8 * K);
    arena.take(5 * K);
    arena.reset();
    const grown = arena.take(13 * K);
    expect(grown.buffer).not.toBe(first.buffer);
    arena.take(3 * K);
    arena.reset();
    expect(arena.take(16 * K).buffer).toBe(grown.buffer);
    arena.take(40 * K);
    arena.reset();
    // Never beyond the maximum: a larger fill keeps taking buffers of its own.
    expect(arena.take(16 * K).buffer).toBe(grown.buffer);
  });
});
