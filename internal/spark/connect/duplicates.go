package connect

import (
	"context"
	"strings"
)

const duplicatesObservation = "tauro_duplicates"

// Duplicates counts the rows of view (of those meeting keep, when it is
// set) that repeat another row's values of columns. It is a job of its
// own: Spark observes no DISTINCT aggregate, so a write cannot count them
// as it writes. The job writes to the noop data source and reads the count
// from its observation, so no rows travel back.
func (s *Session) Duplicates(ctx context.Context, view, keep string, columns []string) (int64, error) {
	op := "count duplicates in " + view
	if err := s.check(op); err != nil {
		return 0, err
	}
	key := make([]string, len(columns))
	for i, c := range columns {
		key[i] = "`" + strings.ReplaceAll(c, "`", "``") + "`"
	}
	query := "SELECT count(1) - 1 AS extra FROM " + view
	if keep != "" {
		query += " WHERE " + keep
	}
	query += " GROUP BY " + strings.Join(key, ", ") + " HAVING count(1) > 1"
	rel, err := sqlRelation(query, nil)
	if err != nil {
		return 0, err
	}
	observation := duplicatesObservation + "_" + strings.ReplaceAll(newUUID(), "-", "")
	counted := countingRows(rel, observation, "1", "", Metric{Name: "extra", SQL: "coalesce(sum(extra), 0)"})
	resp, err := s.execute(ctx, writeOperation(counted, "noop", "", "SAVE_MODE_OVERWRITE", nil, nil))
	if err != nil {
		return 0, s.fail(ctx, op, err)
	}
	return resp.Observed[observation]["extra"], nil
}
