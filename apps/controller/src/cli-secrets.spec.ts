import { commandLinePasswordWarning, passwordFlags } from './cli-secrets';

describe('passwords on the command line', () => {
  it.each([
    [['migrate', '--source', 'postgres://u:pw@h/d', '--target', 'postgres://u@h/d'], ['--source']],
    [
      ['migrate', '--source=postgres://u:pw@h/d', '--target', 'postgresql://u:p2@h/d'],
      ['--source', '--target'],
    ],
    [['migrate', '--source', 'postgres://u@h/d', '--source-password-file', '/run/pw'], []],
    [['migrate', '--spec', 'task.yaml'], []],
  ])('%j: %j', (argv, flags) => {
    expect(passwordFlags(argv)).toEqual(flags);
  });

  it('warns in one line naming the flags and the ways to give it instead', () => {
    const line = commandLinePasswordWarning(['check', '--target', 'postgres://u:pw@h/d'])!;
    expect(line.trimEnd().split('\n')).toHaveLength(1);
    expect(line).toMatch(/^pgferry: warning: the password in --target is visible to other users/);
    expect(line).toContain('--target-password-file');
    expect(line).not.toContain('pw@');
    expect(commandLinePasswordWarning(['check', '--spec', 'x'])).toBeNull();
  });
});
