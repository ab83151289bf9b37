// Which KubeVirt and CDI images the local cluster's platform install takes (test/cluster/bed/platform.ts).
import { describe, expect, it } from 'vitest';
import { CDI, pickImages, PlatformImagesMissing, type LabelledImage } from './bed/platform.js';

const set = (revision: string, names = CDI.images): LabelledImage[] => names.map((name) => ({ reference: `localhost/cdi/${name}:${revision.slice(0, 12)}`, revision }));
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

describe('the platform images', () => {
  it('takes the one revision that has every image', () => {
    const picked = pickImages(CDI, [...set(A), ...set(B, ['cdi-operator'])], undefined);
    expect(picked.revision).toBe(A);
    expect(picked.images['cdi-importer']).toBe(`localhost/cdi/cdi-importer:${A.slice(0, 12)}`);
  });

  it('fails, naming what is missing and how to provide it, when no revision is complete', () => {
    const error = (() => {
      try {
        pickImages(CDI, set(A, ['cdi-operator', 'cdi-controller']), undefined);
      } catch (caught: unknown) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(PlatformImagesMissing);
    expect((error as Error).message).toMatch(/aaaaaaaaaaaa lacks cdi-apiserver, cdi-importer/);
    expect((error as Error).message).toMatch(/org\.opencontainers\.image\.source=https:\/\/github\.com\/kubevirt\/containerized-data-importer/);
    expect(() => pickImages(CDI, [], undefined)).toThrow(/no complete set of CDI images/);
  });

  it('asks which one when several are complete, and takes the one named (a prefix will do)', () => {
    expect(() => pickImages(CDI, [...set(A), ...set(B)], undefined)).toThrow(/set CDI_REVISION/);
    expect(pickImages(CDI, [...set(A), ...set(B)], 'bbbbbbb').revision).toBe(B);
    expect(() => pickImages(CDI, set(A), 'c0ffee')).toThrow(/revision c0ffee \(CDI_REVISION\): missing cdi-operator/);
  });
});
