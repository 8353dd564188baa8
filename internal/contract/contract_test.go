package contract

import (
	"reflect"
	"strings"
	"testing"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
)

func TestSearchDimension_ComesBackAsTheSameDimension(t *testing.T) {
	for _, d := range []experiment.Dimension{
		{Name: "lr", Kind: experiment.Real, Low: 0.001, High: 0.1, Prior: experiment.LogUniform},
		{Name: "depth", Kind: experiment.Integer, Low: 3, High: 10, Prior: experiment.Uniform},
		{Name: "criterion", Kind: experiment.Categorical, Categories: []any{"gini", int64(2), 0.5, true, nil}},
	} {
		pb, err := SearchDimension(d)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		if got := Dimension(pb); !reflect.DeepEqual(got, d) {
			t.Errorf("%s: came back as %+v, want %+v", d.Name, got, d)
		}
	}
}

func TestSearchDimension_WhatTheContractCannotCarryIsAnError(t *testing.T) {
	for _, c := range []struct {
		d    experiment.Dimension
		want string
	}{
		{experiment.Dimension{Name: "c", Kind: experiment.Categorical, Categories: []any{"a", struct{}{}}}, "category 1"},
		{experiment.Dimension{Name: "k", Kind: "ordinal", Low: 1, High: 2}, "kind"},
		{experiment.Dimension{Name: "p", Kind: experiment.Real, Low: 1, High: 2, Prior: "normal"}, "prior"},
	} {
		_, err := SearchDimension(c.d)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"`+c.d.Name+`"`) {
			t.Errorf("%+v: err = %v, want one naming the dimension and its %s", c.d, err, c.want)
		}
	}
}

func TestDimension_KeepsAnUnknownEnumValueForTheEngineToName(t *testing.T) {
	d := Dimension(&execv1.SearchDimension{Name: "x", Kind: execv1.DimensionKind(42), Prior: execv1.Prior(7)})
	if d.Kind != "enum value 42" || d.Prior != "enum value 7" {
		t.Errorf("got kind %q, prior %q", d.Kind, d.Prior)
	}
	if probs := (experiment.Spec{Space: []experiment.Dimension{d}}).Check(""); !strings.Contains(probs.Error(), "enum value 42") {
		t.Errorf("the engine's check does not name the unknown kind: %v", probs)
	}
}
