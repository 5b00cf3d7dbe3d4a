/**
 * Which statement of a source session's query string a captured schema change was. The event
 * trigger sees only the whole string (current_query()): a client may send
 * `ALTER TABLE a ADD c int; INSERT INTO b VALUES (1)` as one simple-protocol query, and
 * replaying that string would run the INSERT on the destination as well as through the stream.
 * The string is split with PostgreSQL's own parser (libpg_query, compiled to WebAssembly by
 * the libpg-query package), and only the statement the trigger reported is cut out of the
 * original text (by its stmt_location / stmt_len, not deparsed, so it runs exactly as written).
 *
 * The trigger reports the statement's command tag and its ordinal among the top-level
 * statements of that tag in the string (see installDdlCapture). The splitter keeps the
 * ordinal-th statement whose command tag is that tag, and refuses whenever that cannot be
 * told for certain. libpg_query gives the parse tree but not PostgreSQL's command tags
 * (CreateCommandTag lives in the server's utility.c), so commandTags below maps the parse
 * nodes of schema changes to their tags; a node it does not know makes a multi-statement
 * string ambiguous, never a guess.
 */

import type { Node, ParseResult } from 'libpg-query';

/** A captured statement as the splitter needs it (a subset of DdlEvent). */
export interface CapturedStatement {
  tag: string;
  /** 1 for the first top-level statement with this tag in the string, 2 for the second... */
  ordinal: number;
  /** The trigger fired inside a function, procedure, DO block or trigger, not for a statement of the string. */
  nested: boolean;
  command: string;
}

export type SplitResult = { statement: string } | { refusal: string };

type Parse = (sql: string) => Promise<ParseResult>;
let parser: Promise<Parse> | null = null;

/**
 * The parser, loaded on first use: the WebAssembly module (1.7 MB) is compiled only in a
 * process that meets a schema change.
 */
function loadParser(): Promise<Parse> {
  parser ??= import('libpg-query').then(async (m) => {
    await m.loadModule();
    return m.parse;
  });
  return parser;
}

/**
 * The text of the statement `captured` stands for, cut from its query string, or why it cannot
 * be replayed (the caller stops the task with it). Pure apart from loading the parser.
 */
export async function capturedStatement(captured: CapturedStatement): Promise<SplitResult> {
  const { tag, ordinal, command } = captured;
  if (captured.nested)
    return {
      refusal: `the ${tag} ran inside a function, procedure, DO block or trigger called by the statement, and pgferry replays only statements sent as they are (running the caller again would repeat whatever else it did)`,
    };
  let parsed: ParseResult;
  try {
    parsed = await (await loadParser())(command);
  } catch (err) {
    return {
      refusal: `pgferry's SQL parser cannot split the statement into its parts (${(err as Error).message})`,
    };
  }
  const bytes = Buffer.from(command, 'utf8');
  const statements = (parsed.stmts ?? []).map((raw) => {
    const start = raw.stmt_location ?? 0;
    // stmt_len 0 (omitted): to the end of the string. Both count bytes of the UTF-8 text.
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    return {
      text: bytes.subarray(start, end).toString('utf8').trim(),
      kind: raw.stmt ? statementKind(raw.stmt) : 'unknown',
      resets: raw.stmt ? resetsOrdinals(raw.stmt) : false,
    };
  });
  if (statements.length === 1) {
    const [only] = statements;
    if (only.kind === 'not-ddl')
      return {
        refusal: `the ${tag} did not come from the statement itself (it holds no schema change pgferry can replay: the change ran inside it)`,
      };
    // The trigger fired at top level for the string's one statement: that is the one, whatever
    // tag commandTags gives it.
    return { statement: only.text };
  }
  if (statements.some((s) => s.kind === 'unknown'))
    return {
      refusal: `the query string holds ${statements.length} statements, and pgferry cannot tell which of them is the ${tag}`,
    };
  const candidates = statements.filter((s) => typeof s.kind !== 'string' && s.kind.includes(tag));
  const uncertain = candidates.some((s) => s.kind.length > 1);
  const resets = statements.some((s) => s.resets);
  if (candidates.length < ordinal || (candidates.length > 1 && (uncertain || resets)))
    return {
      refusal: `the query string holds ${statements.length} statements, and pgferry cannot tell for certain which of them is the ${tag} the source reported${resets ? ' (it rolls back to a savepoint, aborts or prepares a transaction, or runs an extension script, after which the source counts its statements anew)' : ''}`,
    };
  return { statement: candidates[ordinal - 1].text };
}

/**
 * What a top-level parse node is: 'not-ddl' (never fires a DDL event trigger itself: DML,
 * queries, function calls, DO, transaction control, settings), the command tags it may carry
 * (one, or two where PostgreSQL versions differ), or 'unknown'.
 */
type Kind = 'not-ddl' | 'unknown' | string[];

const NOT_DDL = new Set([
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'SetOperationStmt',
  'CopyStmt',
  'TruncateStmt',
  'CallStmt',
  'DoStmt',
  'TransactionStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'DiscardStmt',
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'PrepareStmt',
  'ExecuteStmt',
  'DeallocateStmt',
  'ExplainStmt',
  'LockStmt',
  'ConstraintsSetStmt',
  'NotifyStmt',
  'ListenStmt',
  'UnlistenStmt',
  'LoadStmt',
  'CheckPointStmt',
  'VacuumStmt',
  'ClusterStmt',
  'AlterSystemStmt',
]);

/** The object-type word of a command tag (`ALTER <word>`, `DROP <word>`). */
const OBJECT_WORD: Record<string, string> = {
  OBJECT_ACCESS_METHOD: 'ACCESS METHOD',
  OBJECT_AGGREGATE: 'AGGREGATE',
  OBJECT_CAST: 'CAST',
  OBJECT_COLLATION: 'COLLATION',
  OBJECT_CONVERSION: 'CONVERSION',
  OBJECT_DOMAIN: 'DOMAIN',
  OBJECT_EXTENSION: 'EXTENSION',
  OBJECT_FDW: 'FOREIGN DATA WRAPPER',
  OBJECT_FOREIGN_SERVER: 'SERVER',
  OBJECT_FOREIGN_TABLE: 'FOREIGN TABLE',
  OBJECT_FUNCTION: 'FUNCTION',
  OBJECT_INDEX: 'INDEX',
  OBJECT_LANGUAGE: 'LANGUAGE',
  OBJECT_MATVIEW: 'MATERIALIZED VIEW',
  OBJECT_OPCLASS: 'OPERATOR CLASS',
  OBJECT_OPERATOR: 'OPERATOR',
  OBJECT_OPFAMILY: 'OPERATOR FAMILY',
  OBJECT_POLICY: 'POLICY',
  OBJECT_PROCEDURE: 'PROCEDURE',
  OBJECT_PUBLICATION: 'PUBLICATION',
  OBJECT_ROUTINE: 'ROUTINE',
  OBJECT_RULE: 'RULE',
  OBJECT_SCHEMA: 'SCHEMA',
  OBJECT_SEQUENCE: 'SEQUENCE',
  OBJECT_STATISTIC_EXT: 'STATISTICS',
  OBJECT_TABLE: 'TABLE',
  OBJECT_TRANSFORM: 'TRANSFORM',
  OBJECT_TRIGGER: 'TRIGGER',
  OBJECT_TSCONFIGURATION: 'TEXT SEARCH CONFIGURATION',
  OBJECT_TSDICTIONARY: 'TEXT SEARCH DICTIONARY',
  OBJECT_TSPARSER: 'TEXT SEARCH PARSER',
  OBJECT_TSTEMPLATE: 'TEXT SEARCH TEMPLATE',
  OBJECT_TYPE: 'TYPE',
  OBJECT_VIEW: 'VIEW',
  // Sub-objects take the tag of what holds them.
  OBJECT_COLUMN: 'TABLE',
  OBJECT_TABCONSTRAINT: 'TABLE',
  OBJECT_DOMCONSTRAINT: 'DOMAIN',
  OBJECT_ATTRIBUTE: 'TYPE',
};

const word = (objtype: unknown) => (typeof objtype === 'string' ? OBJECT_WORD[objtype] : undefined);
const tags = (...t: Array<string | undefined>): Kind =>
  t.every((x): x is string => x !== undefined) ? [...new Set(t)] : 'unknown';

/** The command tags of a schema change node, as PostgreSQL's CreateCommandTag gives them. */
function statementKind(node: Node): Kind {
  const [type, s] = nodeOf(node);
  if (type === 'SelectStmt') return s.intoClause ? ['SELECT INTO'] : 'not-ddl';
  if (NOT_DDL.has(type)) return 'not-ddl';
  const alter = (objtype: unknown) => tags(word(objtype) && `ALTER ${word(objtype)}`);
  switch (type) {
    case 'CreateStmt':
      return ['CREATE TABLE'];
    case 'CreateForeignTableStmt':
      return ['CREATE FOREIGN TABLE'];
    case 'CreateTableAsStmt':
      return s.objtype === 'OBJECT_MATVIEW' ? ['CREATE MATERIALIZED VIEW'] : ['CREATE TABLE AS'];
    case 'RefreshMatViewStmt':
      return ['REFRESH MATERIALIZED VIEW'];
    case 'ViewStmt':
      return ['CREATE VIEW'];
    case 'IndexStmt':
      return ['CREATE INDEX'];
    case 'ReindexStmt':
      return ['REINDEX'];
    case 'CreateSchemaStmt':
      return ['CREATE SCHEMA'];
    case 'CreateSeqStmt':
      return ['CREATE SEQUENCE'];
    case 'AlterSeqStmt':
      return ['ALTER SEQUENCE'];
    case 'AlterTableStmt':
    case 'AlterTableMoveAllStmt':
      return alter(s.objtype ?? 'OBJECT_TABLE');
    case 'DropStmt':
      return tags(word(s.removeType) && `DROP ${word(s.removeType)}`);
    case 'RenameStmt':
      // A column's rename takes the tag of its relation's kind in recent servers, ALTER TABLE
      // in older ones: two tags, so it is picked only where no other statement could be meant.
      return s.renameType === 'OBJECT_COLUMN'
        ? tags('ALTER TABLE', word(s.relationType) && `ALTER ${word(s.relationType)}`)
        : alter(s.renameType);
    case 'AlterObjectSchemaStmt':
    case 'AlterOwnerStmt':
    case 'AlterObjectDependsStmt':
      return alter(s.objectType);
    case 'CreateFunctionStmt':
      return [s.is_procedure ? 'CREATE PROCEDURE' : 'CREATE FUNCTION'];
    case 'AlterFunctionStmt':
      return alter(s.objtype ?? 'OBJECT_FUNCTION');
    case 'DefineStmt':
      return tags(word(s.kind) && `CREATE ${word(s.kind)}`);
    case 'CompositeTypeStmt':
    case 'CreateEnumStmt':
    case 'CreateRangeStmt':
      return ['CREATE TYPE'];
    case 'AlterEnumStmt':
    case 'AlterTypeStmt':
      return ['ALTER TYPE'];
    case 'CreateDomainStmt':
      return ['CREATE DOMAIN'];
    case 'AlterDomainStmt':
      return ['ALTER DOMAIN'];
    case 'AlterCollationStmt':
      return ['ALTER COLLATION'];
    case 'AlterOperatorStmt':
      return ['ALTER OPERATOR'];
    case 'CreateTrigStmt':
      return ['CREATE TRIGGER'];
    case 'RuleStmt':
      return ['CREATE RULE'];
    case 'CreatePolicyStmt':
      return ['CREATE POLICY'];
    case 'AlterPolicyStmt':
      return ['ALTER POLICY'];
    case 'CreateStatsStmt':
      return ['CREATE STATISTICS'];
    case 'AlterStatsStmt':
      return ['ALTER STATISTICS'];
    case 'CommentStmt':
      return ['COMMENT'];
    case 'SecLabelStmt':
      return ['SECURITY LABEL'];
    case 'GrantStmt':
      return [s.is_grant ? 'GRANT' : 'REVOKE'];
    case 'AlterDefaultPrivilegesStmt':
      return ['ALTER DEFAULT PRIVILEGES'];
    case 'CreateOpClassStmt':
      return ['CREATE OPERATOR CLASS'];
    case 'CreateOpFamilyStmt':
      return ['CREATE OPERATOR FAMILY'];
    case 'AlterOpFamilyStmt':
      return ['ALTER OPERATOR FAMILY'];
    case 'CreateConversionStmt':
      return ['CREATE CONVERSION'];
    case 'CreateCastStmt':
      return ['CREATE CAST'];
    case 'CreateTransformStmt':
      return ['CREATE TRANSFORM'];
    case 'AlterTSDictionaryStmt':
      return ['ALTER TEXT SEARCH DICTIONARY'];
    case 'AlterTSConfigurationStmt':
      return ['ALTER TEXT SEARCH CONFIGURATION'];
    case 'ImportForeignSchemaStmt':
      return ['IMPORT FOREIGN SCHEMA'];
    case 'CreateExtensionStmt':
      return ['CREATE EXTENSION'];
    case 'AlterExtensionStmt':
    case 'AlterExtensionContentsStmt':
      return ['ALTER EXTENSION'];
    default:
      return 'unknown';
  }
}

/**
 * After this statement the trigger's count of statements per tag in the string may be off:
 * the count is a setting, and settings revert with a rollback (to a savepoint) or a prepared
 * transaction; an extension's script fires the trigger for statements that are not in the string.
 */
function resetsOrdinals(node: Node): boolean {
  const [type, s] = nodeOf(node);
  if (type === 'TransactionStmt')
    return ['TRANS_STMT_ROLLBACK', 'TRANS_STMT_ROLLBACK_TO', 'TRANS_STMT_PREPARE'].includes(s.kind as string);
  return ['CreateExtensionStmt', 'AlterExtensionStmt', 'AlterExtensionContentsStmt'].includes(type);
}

function nodeOf(node: Node): [string, Record<string, unknown>] {
  const [type] = Object.keys(node);
  return [type, (node as unknown as Record<string, Record<string, unknown>>)[type] ?? {}];
}
