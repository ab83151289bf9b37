// Standard Kubernetes conditions as a pure function: lastTransitionTime changes only when the
// status does, so writing the same conditions twice is a no-op for the API server too.
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

export function setConditions(existing: readonly Condition[] | undefined, updates: readonly ConditionInput[], now: Date, generation?: number): Condition[] {
  const result = [...(existing ?? [])];
  for (const update of updates) {
    const index = result.findIndex((c) => c.type === update.type);
    const previous = index >= 0 ? result[index] : undefined;
    const next: Condition = {
      ...update,
      message: update.message.slice(0, 32768),
      lastTransitionTime: previous && previous.status === update.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z'),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
    if (index >= 0) result[index] = next;
    else result.push(next);
  }
  return result.sort((a, b) => a.type.localeCompare(b.type));
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
