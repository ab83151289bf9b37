import { describe, expect, it } from 'vitest';
import { compareIsoIdentifiers, isoIdentifiers, jolietIdentifiers } from './identifiers.js';

const files = (...names: string[]) => names.map((name) => ({ name, isDir: false }));

describe('ISO9660 identifiers (level 2 d-characters)', () => {
  it('maps names to upper-case d-characters with extension and version', () => {
    expect(isoIdentifiers(files('hello.txt', 'Makefile', '.bashrc', 'a-b c.tar.gz'))).toEqual(['HELLO.TXT;1', 'MAKEFILE.;1', '_BASHRC.;1', 'A_B_C_TAR.GZ;1']);
    expect(isoIdentifiers([{ name: 'conf.d', isDir: true }])).toEqual(['CONF_D']);
  });

  it('limits files to 30 characters plus ";1" and directories to 31', () => {
    const [file] = isoIdentifiers(files(`${'a'.repeat(40)}.yaml`));
    expect(file).toBe(`${'A'.repeat(26)}.YAML;1`);
    const [dir] = isoIdentifiers([{ name: 'd'.repeat(40), isDir: true }]);
    expect(dir).toBe('D'.repeat(31));
  });

  it('mangles names that collide after case folding, in input order, dropping none', () => {
    expect(isoIdentifiers(files('README', 'ReadMe', 'readme', 'README_1'))).toEqual(['README.;1', 'README_2.;1', 'README_3.;1', 'README_1.;1']);
    const many = isoIdentifiers(files(...Array.from({ length: 50 }, (_, i) => `${'x'.repeat(40)}${i}.conf`)));
    expect(new Set(many).size).toBe(50);
    many.forEach((id) => expect(id.replace(/;1$/, '').length).toBeLessThanOrEqual(31));
  });

  it('orders identifiers as ECMA-119 9.3 says: name, then extension, padded with spaces', () => {
    const ids = ['A_B.;1', 'A.TXT;1', 'A.;1', 'AB.;1'];
    expect([...ids].sort(compareIsoIdentifiers)).toEqual(['A.;1', 'A.TXT;1', 'AB.;1', 'A_B.;1']);
  });
});

describe('Joliet identifiers', () => {
  it('keeps names up to 64 UTF-16 units as given, case included', () => {
    expect(jolietIdentifiers(files('Grüße.txt', 'a', 'A', '日本語'))).toEqual(['Grüße.txt', 'a', 'A', '日本語']);
  });

  it('replaces the characters Joliet forbids', () => {
    expect(jolietIdentifiers(files('a:b;c*d?e\\f'))).toEqual(['a_b_c_d_e_f']);
  });

  it('truncates longer names to 64 units, keeping the extension and whole surrogate pairs, then disambiguates', () => {
    const [a, b] = jolietIdentifiers(files(`${'x'.repeat(70)}-1.conf`, `${'x'.repeat(70)}-2.conf`));
    expect(a).toBe(`${'x'.repeat(59)}.conf`);
    expect(b).toBe(`${'x'.repeat(57)}~1.conf`);
    const [emoji] = jolietIdentifiers(files('😀'.repeat(40)));
    expect(emoji?.length).toBe(64);
    expect(emoji).toBe('😀'.repeat(32));
    const [odd] = jolietIdentifiers(files(`a${'😀'.repeat(40)}`));
    expect(odd).toBe(`a${'😀'.repeat(31)}`);
  });
});
