package connect

import (
	"context"
	"strings"
)

// ExpressionType has Spark analyse expr over view's columns, without
// running anything, and returns the type of its value (Spark's type name:
// "Boolean", "Long"...).
func (s *Session) ExpressionType(ctx context.Context, view, expr string) (string, error) {
	op := "analyse " + expr
	if err := s.check(op); err != nil {
		return "", err
	}
	df, err := s.spark.Sql(ctx, "SELECT ("+expr+") AS tauro_expression FROM "+view)
	if err != nil {
		return "", s.fail(ctx, op, err)
	}
	st, err := df.Schema(ctx)
	if err != nil {
		return "", s.fail(ctx, op, err)
	}
	if len(st.Fields) != 1 {
		return "", permanent(op, "Spark returned %d columns for one expression", len(st.Fields))
	}
	return st.Fields[0].DataType.TypeName(), nil
}

// IsBoolean reports whether a type name ExpressionType returned is
// BOOLEAN.
func IsBoolean(typeName string) bool { return strings.EqualFold(typeName, "boolean") }
