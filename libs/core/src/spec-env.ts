import { SpecError } from './errors';

const REFERENCE = /\$(\$|\{([^}]*)\})/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A copy of a parsed spec document with every `${NAME}` in a string value replaced by the
 * environment variable NAME (`$$` writes a single `$`). Only string values are expanded, never
 * keys, so a variable cannot add fields. Throws a SpecError naming each unset variable and
 * where it is referenced.
 */
export function expandEnvReferences(doc: unknown, env: Record<string, string | undefined>): unknown {
  const problems: string[] = [];
  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === 'string')
      return value.replace(REFERENCE, (whole, dollar: string, name: string | undefined) => {
        if (dollar === '$') return '$';
        if (!VARIABLE_NAME.test(name ?? '')) {
          problems.push(`${path}: "${whole}" is not a variable reference (write \${NAME}, or $$ for a $)`);
          return whole;
        }
        const v = env[name!];
        if (v === undefined) {
          problems.push(
            `${path}: environment variable ${name} is not set (referenced as \${${name}}); set it, or write $$ for a literal $`,
          );
          return whole;
        }
        return v;
      });
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`));
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, walk(v, path ? `${path}.${k}` : k)]),
      );
    return value;
  };
  const out = walk(doc, '');
  if (problems.length) throw new SpecError(problems);
  return out;
}
