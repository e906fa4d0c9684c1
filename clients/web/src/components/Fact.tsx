// One term of a facts list (<dl className="facts">): the label and its value.
import type { ReactNode } from 'react';

export function Fact({ label, children, className }: { label: ReactNode; children: ReactNode; className?: string }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd className={className}>{children}</dd>
    </div>
  );
}
