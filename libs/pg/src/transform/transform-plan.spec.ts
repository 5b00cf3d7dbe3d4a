import {
  casePlan,
  caseProblems,
  maskSql,
  planTransform,
  sourceColumnsSql,
  viewSql,
  type SourceColumn,
} from './transform-plan';

const COLUMNS: SourceColumn[] = [
  { name: 'id', type: 'integer', notNull: true, generated: false },
  { name: 'name', type: 'text', notNull: true, generated: false },
  { name: 'email', type: 'character varying(80)', notNull: true, generated: false },
  { name: 'phone', type: 'text', notNull: false, generated: false },
  { name: 'country', type: 'text', notNull: true, generated: false },
  { name: 'internal_note', type: 'text', notNull: false, generated: false },
  { name: 'upper_name', type: 'text', notNull: false, generated: true },
];

const EXAMPLE = {
  table: 'sales.customers',
  drop: ['internal_note'],
  rename: { name: 'full_name' },
  mask: { email: 'sha256' as const, phone: 'redact' as const },
  add: { country_code: 'upper(country)' },
  filter: "country <> 'XX'",
};

describe('planTransform', () => {
  it("maps the issue's example to the destination's columns, in the source's order, added ones last", () => {
    const { plan, problems } = planTransform(EXAMPLE, COLUMNS, ['id']);
    expect(problems).toEqual([]);
    expect(plan.output.map((o) => [o.name, o.from, o.expr])).toEqual([
      ['id', 'column', '"id"'],
      ['full_name', 'rename', '"name"'],
      ['email', 'mask', `encode(sha256(convert_to("email"::text, 'UTF8')), 'hex')`],
      ['phone', 'mask', `CASE WHEN "phone" IS NULL THEN NULL ELSE 'REDACTED' END`],
      ['country', 'column', '"country"'],
      ['country_code', 'add', '(upper(country))'],
    ]);
    // The records' shape: every column but the generated one, dropped ones included.
    expect(plan.source.map((c) => c.name)).toEqual([
      'id',
      'name',
      'email',
      'phone',
      'country',
      'internal_note',
    ]);
    expect(plan.key).toEqual(['id']);
    expect(plan.filter).toBe("(country <> 'XX')");
  });

  it('keeps a renamed key as the key under its new name', () => {
    const { plan, problems } = planTransform({ table: 's.t', rename: { id: 'customer_id' } }, COLUMNS, [
      'id',
    ]);
    expect(problems).toEqual([]);
    expect({ key: plan.key, sourceKey: plan.sourceKey }).toEqual({ key: ['customer_id'], sourceKey: ['id'] });
  });

  it('names each problem: unknown and generated columns, a dropped or masked key, two columns of one name', () => {
    const { problems } = planTransform(
      {
        table: 's.t',
        drop: ['id', 'nope'],
        mask: { upper_name: 'md5' },
        rename: { name: 'email' },
      },
      COLUMNS,
      ['id'],
    );
    expect(problems.map((p) => p.column)).toEqual(['nope', 'upper_name', 'id', 'email']);
    expect(problems[0].message).toBe(
      'drop names column "nope", which s.t does not have (it has id, name, email, phone, country, internal_note, upper_name): correct the name',
    );
    expect(problems[2].message).toContain('drop names key column "id" of s.t');
  });

  it('resolves a relative module path against the working directory', () => {
    const { plan } = planTransform({ table: 's.t', module: './m.js' }, COLUMNS, ['id']);
    expect(plan.module).toBe(`${process.cwd()}/m.js`);
  });
});

describe('view SQL', () => {
  it('selects the output expressions where the filter is true (NULL counts as false)', () => {
    const { plan } = planTransform(EXAMPLE, COLUMNS, ['id']);
    expect(viewSql(plan, 'ONLY "sales"."customers"')).toBe(
      `SELECT "id" AS "id", "name" AS "full_name", encode(sha256(convert_to("email"::text, 'UTF8')), 'hex') AS "email", CASE WHEN "phone" IS NULL THEN NULL ELSE 'REDACTED' END AS "phone", "country" AS "country", (upper(country)) AS "country_code" FROM ONLY "sales"."customers" WHERE COALESCE((country <> 'XX'), false)`,
    );
  });

  it("stages the source's columns with their types", () => {
    const { plan } = planTransform(EXAMPLE, COLUMNS, ['id']);
    expect(sourceColumnsSql(plan, ['id', 'email'])).toBe('"id" integer, "email" character varying(80)');
  });

  it('masks NULL as NULL', () => {
    expect(maskSql('md5', '"c"')).toBe('md5("c"::text)');
    expect(maskSql('null', '"c"')).toBe('NULL::text');
  });
});

describe('planTransform under a column list, and casePlan under objects.nameCase', () => {
  const listed = COLUMNS.filter((c) => ['id', 'name', 'country'].includes(c.name));
  const unlisted = new Set(COLUMNS.filter((c) => !listed.includes(c)).map((c) => c.name));

  it('plans over the listed columns alone and names a column the list leaves out', () => {
    const { plan, problems } = planTransform(
      { table: 'sales.customers', rename: { name: 'full_name' }, mask: { email: 'md5' } },
      listed,
      ['id'],
      unlisted,
    );
    expect(plan.source.map((c) => c.name)).toEqual(['id', 'name', 'country']);
    expect(problems).toEqual([
      {
        column: 'email',
        message: expect.stringContaining(
          'mask names column "email", which the column list of sales.customers leaves out (objects.include[].columns: id, name, country)',
        ),
      },
    ]);
  });

  it("cases the transform's destination names (renamed and added too), not the expressions over the source", () => {
    const { plan } = planTransform(
      { table: 'sales.customers', rename: { name: 'full_name' }, add: { country_code: 'upper(country)' } },
      listed,
      ['id'],
      unlisted,
    );
    const cased = casePlan(plan, 'upper');
    expect(cased.output.map((o) => [o.name, o.expr])).toEqual([
      ['ID', '"id"'],
      ['FULL_NAME', '"name"'],
      ['COUNTRY', '"country"'],
      ['COUNTRY_CODE', '(upper(country))'],
    ]);
    expect([cased.key, cased.sourceKey]).toEqual([['ID'], ['id']]);
    expect(casePlan(plan, 'source')).toBe(plan);
  });

  it('refuses two destination columns that the case makes one', () => {
    const { plan } = planTransform({ table: 'sales.customers', add: { Country: 'lower(country)' } }, listed, [
      'id',
    ]);
    expect(caseProblems(plan, 'lower')).toEqual([
      {
        column: 'country',
        message: expect.stringContaining(
          'makes the destination columns "country" and "Country" of sales.customers one name',
        ),
      },
    ]);
    expect(caseProblems(plan, undefined)).toEqual([]);
  });
});
