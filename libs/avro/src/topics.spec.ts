import { tableTopic } from './topics';

describe('tableTopic', () => {
  it('keeps legal names as Debezium does', () => {
    expect(tableTopic('pgferry', 'public', 'orders')).toBe('pgferry.public.orders');
    expect(tableTopic('p', 'my-schema', 'Order_Lines')).toBe('p.my-schema.Order_Lines');
  });

  it('replaces illegal characters and appends a hash, so distinct tables never collide', () => {
    const a = tableTopic('p', 'Sales Dept', 'Order "Lines"');
    const b = tableTopic('p', 'Sales_Dept', 'Order__Lines_');
    const c = tableTopic('p', 'Sales.Dept', 'Order "Lines"');
    expect(a).toMatch(/^p\.Sales_Dept\.Order__Lines__[0-9a-f]{8}$/);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(tableTopic('p', 'línea', '表')).toMatch(/^p\.l_nea\.__[0-9a-f]{8}$/);
  });

  it('stays within Kafka’s 249 characters', () => {
    expect(tableTopic('p', 's', 'x'.repeat(300)).length).toBeLessThanOrEqual(249);
  });
});
