// Package mirror records execd runs in an MLflow tracking server, tauro's
// way: one parent run per execd run, one child run per ML node attempt.
// A tracked run's event log is its outbox: the mirror sends it in order
// from a cursor kept in the store, so a tracking server that does not
// answer, or a restart of execd, loses nothing and sends nothing twice.
package mirror

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
)

// Spec is what a tracked run is sent with, decided by planning and kept in
// the store beside the run's cursor, so a restarted execd sends the rest
// without the project.
type Spec struct {
	TrackingURI string `json:"tracking_uri"`
	Experiment  string `json:"experiment"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Project     string `json:"project,omitempty"`
	Pipeline    string `json:"pipeline"`
	Env         string `json:"env,omitempty"`
	// Params are the parent run's: the run's hyperparameters, window and
	// model version, none of which a retry or a repair changes.
	Params map[string]string `json:"params,omitempty"`
	// Nodes are the ML nodes, each with its effective hyperparameters as
	// its attempts' params.
	Nodes map[string]map[string]string `json:"nodes"`
	// ExperimentID, Trial and ExperimentSpec are set for an experiment's
	// run: its parent is nested under the experiment's.
	ExperimentID   string          `json:"experiment_id,omitempty"`
	Trial          string          `json:"trial,omitempty"`
	ExperimentSpec *ExperimentSpec `json:"experiment_spec,omitempty"`
}

// SpecOf is the spec of a run of p, or nil when p's runs are not tracked.
func SpecOf(p *plan.Pipeline) *Spec {
	m := p.Settings.MLOps
	if !m.Tracks(p) {
		return nil
	}
	s := &Spec{
		TrackingURI: m.TrackingURI,
		Experiment:  m.ExperimentFor(p.Name),
		Description: m.Description,
		Required:    m.Required,
		Project:     p.Project,
		Pipeline:    p.Name,
		Env:         p.Env,
		Params:      paramValues(p.Hyperparams),
		Nodes:       map[string]map[string]string{},
	}
	for k, v := range map[string]string{
		"start_date":    plan.FormatDate(p.StartDate),
		"end_date":      plan.FormatDate(p.EndDate),
		"model_version": p.ModelVersion,
	} {
		// A hyperparameter of the same name is the run's own.
		if _, taken := s.Params[k]; v != "" && !taken {
			s.Params[k] = v
		}
	}
	for _, n := range p.Nodes {
		if n.ML {
			s.Nodes[n.Name] = paramValues(n.Hyperparams)
		}
	}
	return s
}

// paramValues renders hyperparameters as MLflow params (text): numbers as
// written, anything structured as JSON.
func paramValues(hp map[string]any) map[string]string {
	out := make(map[string]string, len(hp))
	for k, v := range hp {
		switch x := v.(type) {
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'g', -1, 64)
		case nil:
			out[k] = ""
		default:
			b, err := json.Marshal(x)
			if err != nil {
				b = []byte(fmt.Sprint(x))
			}
			out[k] = string(b)
		}
	}
	return out
}

// params is m as MLflow params, in key order so a resend is identical. A
// key MLflow would refuse is left out (it would refuse the whole batch),
// and a value over its limit is cut.
func params(m map[string]string) []mlflow.Param {
	keys := make([]string, 0, len(m))
	for k := range m {
		if validKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]mlflow.Param, len(keys))
	for i, k := range keys {
		v := m[k]
		if r := []rune(v); len(r) > mlflow.MaxParamValueLength {
			v = string(r[:mlflow.MaxParamValueLength])
		}
		out[i] = mlflow.Param{Key: k, Value: v}
	}
	return out
}

// validKey reports whether MLflow takes k as a param or metric key:
// letters, digits and _ - . : / and space, at most MaxKeyLength of them.
func validKey(k string) bool {
	if k == "" || utf8.RuneCountInString(k) > mlflow.MaxKeyLength {
		return false
	}
	for _, r := range k {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-.:/ ", r) {
			return false
		}
	}
	return true
}
