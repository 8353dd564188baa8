// Package contract turns engine values into the messages of the contract
// (proto/tauro/exec/v1) and back, where more than one side of the contract
// writes the same message: the gRPC service, the execd command line and the
// Python worker pool each send a search dimension. Each conversion is
// written here once, so the sides cannot drift apart.
//
// It knows the engine's values and the generated code, and nothing else:
// no transport, no backend.
package contract

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
)

// SearchDimension is d in the contract's terms. A kind, prior or category
// the contract cannot carry is an error naming the dimension, never left
// out: a space sent without one of its values would be searched wrong.
// Whole-number categories travel as JSON numbers.
func SearchDimension(d experiment.Dimension) (*execv1.SearchDimension, error) {
	out := &execv1.SearchDimension{Name: d.Name, Low: d.Low, High: d.High}
	switch d.Kind {
	case experiment.Real:
		out.Kind = execv1.DimensionKind_DIMENSION_KIND_REAL
	case experiment.Integer:
		out.Kind = execv1.DimensionKind_DIMENSION_KIND_INTEGER
	case experiment.Categorical:
		out.Kind = execv1.DimensionKind_DIMENSION_KIND_CATEGORICAL
	default:
		return nil, fmt.Errorf("dimension %q: kind must be real, integer or categorical, got %q", d.Name, d.Kind)
	}
	switch d.Prior {
	case "":
	case experiment.Uniform:
		out.Prior = execv1.Prior_PRIOR_UNIFORM
	case experiment.LogUniform:
		out.Prior = execv1.Prior_PRIOR_LOG_UNIFORM
	default:
		return nil, fmt.Errorf("dimension %q: prior must be uniform or log-uniform, got %q", d.Name, d.Prior)
	}
	for i, c := range d.Categories {
		if n, ok := c.(int64); ok {
			c = float64(n)
		}
		v, err := structpb.NewValue(c)
		if err != nil {
			return nil, fmt.Errorf("dimension %q: category %d (%v) is not a string, number or boolean: %w", d.Name, i, c, err)
		}
		out.Categories = append(out.Categories, v)
	}
	return out, nil
}

// Dimension is the engine's dimension for d. An enum value this execd does
// not know is kept, named, for the engine's check to report with the rest
// of the request's problems; a whole-number category becomes an int64, as
// the engine reads one from configuration.
func Dimension(d *execv1.SearchDimension) experiment.Dimension {
	out := experiment.Dimension{Name: d.GetName(), Low: d.GetLow(), High: d.GetHigh()}
	switch k := d.GetKind(); k {
	case execv1.DimensionKind_DIMENSION_KIND_UNSPECIFIED:
	case execv1.DimensionKind_DIMENSION_KIND_REAL:
		out.Kind = experiment.Real
	case execv1.DimensionKind_DIMENSION_KIND_INTEGER:
		out.Kind = experiment.Integer
	case execv1.DimensionKind_DIMENSION_KIND_CATEGORICAL:
		out.Kind = experiment.Categorical
	default:
		out.Kind = experiment.Kind(fmt.Sprintf("enum value %d", k))
	}
	switch p := d.GetPrior(); p {
	case execv1.Prior_PRIOR_UNSPECIFIED:
	case execv1.Prior_PRIOR_UNIFORM:
		out.Prior = experiment.Uniform
	case execv1.Prior_PRIOR_LOG_UNIFORM:
		out.Prior = experiment.LogUniform
	default:
		out.Prior = experiment.Prior(fmt.Sprintf("enum value %d", p))
	}
	for _, c := range d.GetCategories() {
		v := c.AsInterface()
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f)
		}
		out.Categories = append(out.Categories, v)
	}
	return out
}
