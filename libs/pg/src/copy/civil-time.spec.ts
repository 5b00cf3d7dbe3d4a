import { DataError } from '@pgferry/core';
import { dateToDays, timestampToMicros } from './civil-time';

describe('civil time from text', () => {
  it('refuses a value that is not the ISO form as bad data, saying which form it reads', () => {
    expect(() => dateToDays('05/17/2024')).toThrow(DataError);
    expect(() => dateToDays('05/17/2024')).toThrow(
      'not an ISO date: "05/17/2024" (pgferry reads the form PostgreSQL prints with DateStyle ISO, which its sessions set)',
    );
    expect(() => timestampToMicros('Fri May 17 10:00:00 2024')).toThrow(DataError);
    expect(() => timestampToMicros('Fri May 17 10:00:00 2024')).toThrow(
      'not an ISO timestamp: "Fri May 17 10:00:00 2024" (pgferry reads the form PostgreSQL prints with DateStyle ISO, which its sessions set)',
    );
  });
});
