package experiment

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// Limits on what one experiment may ask for.
const (
	MaxTrials      = 10_000
	MaxParallel    = 256
	MaxDimensions  = 100
	MaxCategories  = 1000
	maxNameLen     = 256
	defaultTrials  = 20
	defaultSampler = TPE
)

// Check reports everything wrong with s, each problem naming its field
// (prefix + "space[0].low") and the fix.
func (s Spec) Check(prefix string) problem.List {
	var probs problem.List
	f := func(name string) string { return prefix + name }
	if strings.TrimSpace(s.Pipeline) == "" {
		probs.Add(f("pipeline"), problem.CodeRequired, "an experiment needs the pipeline whose runs are its trials: set pipeline")
	}
	if s.NTrials < 1 || s.NTrials > MaxTrials {
		probs.Add(f("n_trials"), problem.CodeInvalidValue, "n_trials must be from 1 to %d (the trials to run in all), got %d", MaxTrials, s.NTrials)
	}
	if s.MaxParallel < 1 || s.MaxParallel > MaxParallel {
		probs.Add(f("max_parallel_trials"), problem.CodeInvalidValue, "max_parallel_trials must be from 1 to %d (trials running at once), got %d", MaxParallel, s.MaxParallel)
	}
	switch s.Sampler {
	case TPE, Random:
	default:
		probs.Add(f("sampler"), problem.CodeInvalidValue, "sampler must be tpe (Bayesian) or random, got %q", s.Sampler)
	}
	if strings.TrimSpace(s.Objective.Metric) == "" {
		probs.Add(f("objective.metric"), problem.CodeRequired,
			"name the metric a node logs with ml_context[\"log_metric\"] that the search optimises, e.g. objective: {metric: loss, direction: minimize}")
	}
	switch s.Objective.Direction {
	case Minimize, Maximize:
	default:
		probs.Add(f("objective.direction"), problem.CodeInvalidValue, "objective.direction must be minimize or maximize, got %q", s.Objective.Direction)
	}
	if len(s.Space) == 0 {
		probs.Add(f("space"), problem.CodeRequired,
			"the search space is empty: give at least one dimension, e.g. space: [Real(0.001, 0.1, prior='log-uniform', name='learning_rate')]")
	}
	if len(s.Space) > MaxDimensions {
		probs.Add(f("space"), problem.CodeTooLarge, "the search space has %d dimensions; at most %d are searched", len(s.Space), MaxDimensions)
	}
	seen := map[string]int{}
	for i, d := range s.Space {
		df := f(fmt.Sprintf("space[%d]", i))
		probs = append(probs, d.check(df)...)
		if d.Name == "" {
			continue
		}
		if j, dup := seen[d.Name]; dup {
			probs.Add(df+".name", problem.CodeInvalidValue, "dimension %q is also space[%d]; search each hyperparameter once", d.Name, j)
		}
		seen[d.Name] = i
		if _, fixed := s.Hyperparams[d.Name]; fixed {
			probs.Add(f("hyperparams."+d.Name), problem.CodeIncompatible,
				"%q is both searched (space[%d]) and fixed; remove it from hyperparams or from the space", d.Name, i)
		}
	}
	return probs
}

func (d Dimension) check(f string) problem.List {
	var probs problem.List
	switch {
	case strings.TrimSpace(d.Name) == "":
		probs.Add(f+".name", problem.CodeRequired, "every dimension needs the hyperparameter's name, e.g. Real(0, 1, name='dropout')")
	case len(d.Name) > maxNameLen:
		probs.Add(f+".name", problem.CodeInvalidValue, "the name is longer than %d bytes", maxNameLen)
	}
	switch d.Kind {
	case Real, Integer:
		switch d.Prior {
		case Uniform, LogUniform, "":
		default:
			probs.Add(f+".prior", problem.CodeInvalidValue, "prior must be uniform or log-uniform, got %q", d.Prior)
		}
		if math.IsNaN(d.Low) || math.IsInf(d.Low, 0) || math.IsNaN(d.High) || math.IsInf(d.High, 0) {
			probs.Add(f, problem.CodeInvalidValue, "low and high must be finite numbers")
			return probs
		}
		if d.Low >= d.High {
			probs.Add(f+".low", problem.CodeInvalidValue, "low (%s) must be below high (%s); swap them or widen the range", num(d.Low), num(d.High))
		}
		if d.Prior == LogUniform && d.Low <= 0 {
			probs.Add(f+".low", problem.CodeInvalidValue, "a log-uniform prior needs low > 0, got %s; use a positive low or prior uniform", num(d.Low))
		}
		if d.Kind == Integer && (d.Low != math.Trunc(d.Low) || d.High != math.Trunc(d.High)) {
			probs.Add(f, problem.CodeInvalidValue, "an Integer dimension needs whole bounds, got %s and %s; use Real for fractions", num(d.Low), num(d.High))
		}
		if len(d.Categories) > 0 {
			probs.Add(f+".categories", problem.CodeIncompatible, "a %s dimension has bounds, not categories; use Categorical for a list of values", d.Kind)
		}
	case Categorical:
		if len(d.Categories) == 0 {
			probs.Add(f+".categories", problem.CodeRequired, "a Categorical dimension needs at least one value, e.g. Categorical(['gini', 'entropy'], name='criterion')")
		}
		if len(d.Categories) > MaxCategories {
			probs.Add(f+".categories", problem.CodeTooLarge, "%d categories; at most %d", len(d.Categories), MaxCategories)
		}
		for j, c := range d.Categories {
			switch c.(type) {
			case string, bool, int64, float64, nil:
			default:
				probs.Add(fmt.Sprintf("%s.categories[%d]", f, j), problem.CodeInvalidType, "a category must be a string, number or boolean")
			}
		}
	case "":
		probs.Add(f+".kind", problem.CodeRequired, "say what the dimension is: real, integer or categorical (Real(...), Integer(...), Categorical([...]))")
	default:
		probs.Add(f+".kind", problem.CodeInvalidValue, "kind must be real, integer or categorical, got %q", d.Kind)
	}
	return probs
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Defaults fills what s leaves unset: 20 trials, one at a time, TPE,
// minimising, uniform priors.
func (s *Spec) Defaults() {
	if s.NTrials == 0 {
		s.NTrials = defaultTrials
	}
	if s.MaxParallel == 0 {
		s.MaxParallel = 1
	}
	if s.Sampler == "" {
		s.Sampler = defaultSampler
	}
	if s.Objective.Direction == "" {
		s.Objective.Direction = Minimize
	}
	for i := range s.Space {
		if s.Space[i].Prior == "" && s.Space[i].Kind != Categorical {
			s.Space[i].Prior = Uniform
		}
	}
}

// Merge lays the fields over set in over on top of s: a request over a
// declared experiment.
func (s Spec) Merge(over Spec, seedSet bool) Spec {
	out := s
	if over.Pipeline != "" {
		out.Pipeline = over.Pipeline
	}
	if over.Env != "" {
		out.Env = over.Env
	}
	if len(over.Select) > 0 {
		out.Select = over.Select
	}
	if len(over.Space) > 0 {
		out.Space = over.Space
	}
	if over.Objective.Metric != "" {
		out.Objective.Metric = over.Objective.Metric
		out.Objective.Node = over.Objective.Node
	} else if over.Objective.Node != "" {
		out.Objective.Node = over.Objective.Node
	}
	if over.Objective.Direction != "" {
		out.Objective.Direction = over.Objective.Direction
	}
	if over.NTrials != 0 {
		out.NTrials = over.NTrials
	}
	if over.MaxParallel != 0 {
		out.MaxParallel = over.MaxParallel
	}
	if seedSet {
		out.Seed = over.Seed
	}
	if over.Sampler != "" {
		out.Sampler = over.Sampler
	}
	if over.StartDate != "" {
		out.StartDate = over.StartDate
	}
	if over.EndDate != "" {
		out.EndDate = over.EndDate
	}
	if len(over.Hyperparams) > 0 {
		hp := make(map[string]any, len(s.Hyperparams)+len(over.Hyperparams))
		for k, v := range s.Hyperparams {
			hp[k] = v
		}
		for k, v := range over.Hyperparams {
			hp[k] = v
		}
		out.Hyperparams = hp
	}
	return out
}

// Declared reads experiment name of the project's experiments config:
//
//	tune_model:
//	  pipeline: train
//	  space:
//	    - Real(0.001, 0.1, prior='log-uniform', name='learning_rate')
//	    - {name: max_depth, type: integer, low: 3, high: 10}
//	  objective: {metric: rmse, direction: minimize}
//	  n_trials: 20
//	  max_parallel_trials: 2
//	  seed: 42
//
// The space may also be a mapping of names to dimensions (`max_depth:
// Integer(3, 10)`, `dropout: [0.0, 0.5]`, `criterion: [gini, entropy]`).
func Declared(experiments *config.Map, name string) (Spec, bool, problem.List) {
	raw, ok := experiments.Get(name)
	if !ok {
		return Spec{}, false, nil
	}
	f := "experiments." + name
	var probs problem.List
	m, isMap := raw.(*config.Map)
	if !isMap {
		probs.Add(f, problem.CodeInvalidType, "an experiment must be a mapping with pipeline, space, objective and n_trials")
		return Spec{}, true, probs
	}
	s := Spec{Name: name}
	for _, k := range m.Keys {
		v := m.Values[k]
		kf := f + "." + k
		switch k {
		case "pipeline":
			s.Pipeline = text(v, kf, &probs)
		case "env":
			s.Env = text(v, kf, &probs)
		case "select", "nodes":
			s.Select = texts(v, kf, &probs)
		case "space", "search_space":
			s.Space = ParseSpace(v, kf, &probs)
		case "objective":
			s.Objective = objective(v, kf, &probs)
		case "n_trials", "n_calls": // n_calls is skopt's and tauro's name
			if s.NTrials = integer(v, kf, &probs); s.NTrials < 1 {
				probs.Add(kf, problem.CodeInvalidValue, "%s must be at least 1 (the trials to run in all), got %v", k, v)
			}
		case "max_parallel_trials":
			if s.MaxParallel = integer(v, kf, &probs); s.MaxParallel < 1 {
				probs.Add(kf, problem.CodeInvalidValue, "max_parallel_trials must be at least 1 (trials running at once), got %v", v)
			}
		case "seed", "random_state":
			s.Seed = int64(integer(v, kf, &probs))
		case "sampler":
			s.Sampler = Sampler(strings.ToLower(text(v, kf, &probs)))
		case "start_date":
			s.StartDate = text(v, kf, &probs)
		case "end_date":
			s.EndDate = text(v, kf, &probs)
		case "hyperparams":
			hm, ok := v.(*config.Map)
			if !ok {
				probs.Add(kf, problem.CodeInvalidType, "hyperparams must be a mapping of name to value")
				continue
			}
			s.Hyperparams, _ = config.Plain(hm).(map[string]any)
		case "description":
		default:
			probs.Add(kf, problem.CodeInvalidValue,
				"unknown experiment setting %q; use pipeline, select, space, objective, n_trials, max_parallel_trials, seed, sampler, start_date, end_date, hyperparams or description", k)
		}
	}
	return s, true, probs
}

func objective(v any, f string, probs *problem.List) Objective {
	var o Objective
	switch x := v.(type) {
	case string: // objective: loss
		o.Metric = x
		return o
	case *config.Map:
		for _, k := range x.Keys {
			kf := f + "." + k
			switch k {
			case "metric":
				o.Metric = text(x.Values[k], kf, probs)
			case "node":
				o.Node = text(x.Values[k], kf, probs)
			case "direction", "mode":
				d := strings.ToLower(strings.TrimSpace(text(x.Values[k], kf, probs)))
				switch d {
				case "min", "minimise":
					d = string(Minimize)
				case "max", "maximise":
					d = string(Maximize)
				}
				o.Direction = Direction(d)
			default:
				probs.Add(kf, problem.CodeInvalidValue, "unknown objective setting %q; use metric, node and direction", k)
			}
		}
		return o
	}
	probs.Add(f, problem.CodeInvalidType, "objective must be a metric name or {metric: NAME, direction: minimize|maximize, node: NODE}")
	return o
}

// ParseSpace reads a search space written in config: a list of dimensions
// each with its name, or a mapping of names to dimensions.
func ParseSpace(v any, f string, probs *problem.List) []Dimension {
	var out []Dimension
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			d := ParseDimension(e, "", fmt.Sprintf("%s[%d]", f, i), probs)
			out = append(out, d)
		}
	case *config.Map:
		for _, k := range x.Keys {
			out = append(out, ParseDimension(x.Values[k], k, f+"."+k, probs))
		}
	default:
		probs.Add(f, problem.CodeInvalidType, "space must be a list of dimensions (Real(...), Integer(...), Categorical([...]) or mappings) or a mapping of names to them")
	}
	return out
}

// ParseDimension reads one dimension: tauro's text "Real(0.001, 0.1,
// prior='log-uniform', name='lr')", a mapping {name, type, low, high,
// prior, categories}, or, under a name, skopt's shorthands: [low, high],
// [low, high, prior] or a list of categories.
func ParseDimension(v any, name, f string, probs *problem.List) Dimension {
	switch x := v.(type) {
	case string:
		d, err := parseCall(x)
		if err != nil {
			probs.Add(f, problem.CodeInvalidValue, "%v", err)
			return Dimension{Name: name}
		}
		if d.Name == "" {
			d.Name = name
		}
		return d
	case *config.Map:
		return dimensionMap(x, name, f, probs)
	case []any:
		if name == "" {
			probs.Add(f, problem.CodeRequired, "a dimension written as a list needs a name: put it under one in a mapping (lr: [0.001, 0.1]) or use Real(..., name='lr')")
			return Dimension{}
		}
		return shorthand(x, name, f, probs)
	}
	probs.Add(f, problem.CodeInvalidType, "a dimension is Real(low, high, ...), Integer(low, high, ...), Categorical([...]), a mapping or [low, high]")
	return Dimension{Name: name}
}

func dimensionMap(m *config.Map, name, f string, probs *problem.List) Dimension {
	d := Dimension{Name: name}
	for _, k := range m.Keys {
		v := m.Values[k]
		kf := f + "." + k
		switch k {
		case "name":
			d.Name = text(v, kf, probs)
		case "type", "kind":
			d.Kind = kindOf(text(v, kf, probs))
			if d.Kind == "" {
				probs.Add(kf, problem.CodeInvalidValue, "the type must be real, integer or categorical, got %v", v)
			}
		case "low":
			d.Low = number(v, kf, probs)
		case "high":
			d.High = number(v, kf, probs)
		case "prior":
			d.Prior = Prior(strings.ToLower(strings.TrimSpace(text(v, kf, probs))))
		case "categories", "choices", "values":
			list, ok := v.([]any)
			if !ok {
				probs.Add(kf, problem.CodeInvalidType, "categories must be a list of values")
				continue
			}
			d.Categories = list
		default:
			probs.Add(kf, problem.CodeInvalidValue, "unknown dimension setting %q; use name, type, low, high, prior and categories", k)
		}
	}
	if d.Kind == "" && len(d.Categories) > 0 {
		d.Kind = Categorical
	}
	return d
}

// shorthand is skopt's tuple form: two ints are an Integer, two numbers a
// Real, a third string the prior; anything else is a list of categories.
func shorthand(list []any, name, f string, probs *problem.List) Dimension {
	if len(list) == 2 || len(list) == 3 {
		lo, okLo := list[0].(int64)
		hi, okHi := list[1].(int64)
		prior := Prior("")
		okPrior := len(list) == 2
		if len(list) == 3 {
			s, ok := list[2].(string)
			prior, okPrior = Prior(strings.ToLower(s)), ok
		}
		if okLo && okHi && okPrior {
			return Dimension{Name: name, Kind: Integer, Low: float64(lo), High: float64(hi), Prior: prior}
		}
		flo, okLo := asNumber(list[0])
		fhi, okHi := asNumber(list[1])
		if okLo && okHi && okPrior {
			return Dimension{Name: name, Kind: Real, Low: flo, High: fhi, Prior: prior}
		}
	}
	return Dimension{Name: name, Kind: Categorical, Categories: list}
}

func kindOf(s string) Kind {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "real", "float", "double":
		return Real
	case "integer", "int":
		return Integer
	case "categorical", "category", "choice":
		return Categorical
	}
	return ""
}

func text(v any, f string, probs *problem.List) string {
	switch x := v.(type) {
	case string:
		return x
	case int64, float64, bool:
		return fmt.Sprint(x)
	}
	probs.Add(f, problem.CodeInvalidType, "must be text")
	return ""
}

func texts(v any, f string, probs *problem.List) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			out = append(out, text(e, fmt.Sprintf("%s[%d]", f, i), probs))
		}
		return out
	}
	probs.Add(f, problem.CodeInvalidType, "must be a list of node selectors")
	return nil
}

func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return n, err == nil
	}
	return 0, false
}

func number(v any, f string, probs *problem.List) float64 {
	n, ok := asNumber(v)
	if !ok {
		probs.Add(f, problem.CodeInvalidType, "must be a number")
	}
	return n
}

func integer(v any, f string, probs *problem.List) int {
	n, ok := asNumber(v)
	if !ok || n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
		probs.Add(f, problem.CodeInvalidType, "must be a whole number")
		return 0
	}
	return int(n)
}
