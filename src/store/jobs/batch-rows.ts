/**
 * A batch sent as one JSON object of arrays, one array a column, each in the batch's order
 * (`{"job_id":[…],"input":[…],…}`), read back as rows. Against one object a row through
 * `jsonb_to_recordset`, the keys are written and parsed once a batch instead of once a row, and
 * no object's keys are sorted: PostgreSQL's CPU fell by 1.5–2 µs a row for inserts of 1,000, and
 * by 3–8 µs for completions of 750 (docs/design.md, "Costs measured on the hot path").
 */

/**
 * `ROWS FROM (…) AS alias(columns)` over `param`'s arrays: each column as text, or as jsonb when
 * it is in `jsonb`. A column missing from the object is NULL in every row: ROWS FROM pads a
 * function's missing rows with NULLs, so a sender leaves out a column whose values are all null.
 * `position`, when named, is a last column that numbers the rows from 1 in the batch's order.
 */
export function batchRows(
  param: string,
  alias: string,
  columns: readonly string[],
  { jsonb = [], position }: { jsonb?: readonly string[]; position?: string } = {},
): string {
  const readers = columns.map(
    (column) =>
      `jsonb_array_elements${jsonb.includes(column) ? '' : '_text'}(${param}::jsonb -> '${column}')`,
  );
  const names = position === undefined ? columns : [...columns, position];
  return `ROWS FROM (\n      ${readers.join(',\n      ')}\n    )${position === undefined ? '' : ' WITH ORDINALITY'} AS ${alias}(${names.join(', ')})`;
}
