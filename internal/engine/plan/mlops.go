package plan

import (
	"net/url"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// MLOps is the global mlops block: the MLflow tracking server execd
// records the runs of pipelines with ML nodes in. The zero value is off.
type MLOps struct {
	// Enabled is false when the block says enabled: false, or when there
	// is no block at all.
	Enabled bool
	// TrackingURI is the server, http(s)://host[:port][/prefix].
	TrackingURI string
	// Experiment is the MLflow experiment the runs go in; "" means the
	// pipeline's name. Description is its note.
	Experiment, Description string
	// Required makes a tracking server that cannot be reached fail the
	// run's ML node attempts instead of warning.
	Required bool
}

// Tracks reports whether p's runs are recorded in MLflow: the block is on
// and at least one selected node is an ML node.
func (m MLOps) Tracks(p *Pipeline) bool {
	if !m.Enabled {
		return false
	}
	for _, n := range p.Nodes {
		if n.ML {
			return true
		}
	}
	return false
}

// ExperimentFor is the experiment the runs of pipeline go in.
func (m MLOps) ExperimentFor(pipeline string) string {
	if m.Experiment != "" {
		return m.Experiment
	}
	return pipeline
}

const mlopsField = globalField + "mlops"

// unsupportedMLOps are keys tauro's mlops block reads that describe its own
// storage backends; execd records in an MLflow tracking server only, so
// each is refused with why rather than silently ignored.
var unsupportedMLOps = map[string]string{
	"backend_type":           "execd records runs in an MLflow tracking server; set tracking_uri to its URL",
	"storage_path":           "execd keeps no local MLOps storage; set tracking_uri to an MLflow tracking server",
	"tracking_path":          "execd keeps no local MLOps storage; set tracking_uri to an MLflow tracking server",
	"registry_path":          "execd keeps no model registry of its own; MLflow's registry is the tracking server's",
	"mlops_path":             "execd keeps no local MLOps storage; set tracking_uri to an MLflow tracking server",
	"catalog":                "Databricks Unity Catalog backends are not execd's; set tracking_uri to an MLflow tracking server",
	"schema":                 "Databricks Unity Catalog backends are not execd's; set tracking_uri to an MLflow tracking server",
	"model_retention_days":   "retention is the tracking server's business",
	"max_versions_per_model": "retention is the tracking server's business",
	"metric_buffer_size":     "execd sends metrics in MLflow's own batches from the run's event log",
	"auto_flush_metrics":     "execd sends metrics from the run's event log as they are stored",
	"max_active_runs":        "a pipeline's concurrent runs are set by the pipeline's max_active_runs",
	"auto_cleanup_stale":     "execd ends every MLflow run it opens with its execd run",
	"enable_retry":           "execd always resends what the tracking server did not take, in order, once",
	"max_retries":            "execd always resends what the tracking server did not take, in order, once",
	"enable_circuit_breaker": "execd always resends what the tracking server did not take, in order, once",
}

// parseMLOps reads the global mlops block. With no block, tracking is off.
func parseMLOps(v any, probs *problem.List) MLOps {
	keys, ok := mapKeys(v)
	if !ok {
		probs.Add(mlopsField, problem.CodeInvalidType, "mlops must be a mapping such as {enabled: true, tracking_uri: http://mlflow:5000}, got %s", typeName(v))
		return MLOps{}
	}
	m := MLOps{Enabled: true}
	str := func(key string, dst *string) {
		e, _ := mapGet(v, key)
		if e == nil {
			return
		}
		s, ok := e.(string)
		if !ok {
			probs.Add(mlopsField+"."+key, problem.CodeInvalidType, "%s must be a string, got %s", key, typeName(e))
			return
		}
		*dst = strings.TrimSpace(s)
	}
	boolean := func(key string, dst *bool) {
		e, _ := mapGet(v, key)
		if e == nil {
			return
		}
		b, ok := asBool(e)
		if !ok {
			probs.Add(mlopsField+"."+key, problem.CodeInvalidType, "%s must be true or false, got %s", key, typeName(e))
			return
		}
		*dst = b
	}
	for _, k := range keys {
		switch k {
		case "enabled":
			boolean(k, &m.Enabled)
		case "required":
			boolean(k, &m.Required)
		case "tracking_uri":
			str(k, &m.TrackingURI)
		case "experiment_name":
			str(k, &m.Experiment)
		case "description", "experiment_description":
			str(k, &m.Description)
		case "experiment":
			parseMLOpsExperiment(v, &m, probs)
		default:
			if why, ok := unsupportedMLOps[k]; ok {
				probs.Add(mlopsField+"."+k, problem.CodeInvalidValue, "%s: not supported by execd; %s", k, why)
				continue
			}
			probs.Add(mlopsField+"."+k, problem.CodeInvalidValue,
				"unknown mlops setting %s; execd reads enabled, tracking_uri, experiment (a name, or {name, description}), experiment_name, description and required", q(k))
		}
	}
	if m.Enabled {
		checkTrackingURI(m.TrackingURI, probs)
	}
	return m
}

// parseMLOpsExperiment reads experiment: a name, or {name, description}.
func parseMLOpsExperiment(v any, m *MLOps, probs *problem.List) {
	const field = mlopsField + ".experiment"
	e, _ := mapGet(v, "experiment")
	switch x := e.(type) {
	case nil:
		return
	case string:
		m.Experiment = strings.TrimSpace(x)
		return
	}
	keys, ok := mapKeys(e)
	if !ok {
		probs.Add(field, problem.CodeInvalidType, "experiment must be a name or {name, description}, got %s", typeName(e))
		return
	}
	for _, k := range keys {
		s, _ := mapGet(e, k)
		text, isText := s.(string)
		switch {
		case k != "name" && k != "description":
			probs.Add(field+"."+k, problem.CodeInvalidValue, "unknown experiment setting %s; use name and description", q(k))
		case s != nil && !isText:
			probs.Add(field+"."+k, problem.CodeInvalidType, "%s must be a string, got %s", k, typeName(s))
		case k == "name":
			m.Experiment = strings.TrimSpace(text)
		default:
			m.Description = strings.TrimSpace(text)
		}
	}
}

// checkTrackingURI accepts the URL of an MLflow tracking server. A local
// folder (tauro's file store) is refused: execd and the Python workers of
// every replica must write to one place, and only a server gives them that.
func checkTrackingURI(uri string, probs *problem.List) {
	const field = mlopsField + ".tracking_uri"
	const fix = "run `mlflow server --backend-store-uri sqlite:///<folder>/mlflow.db` and give its URL, e.g. http://127.0.0.1:5000"
	if uri == "" {
		probs.Add(field, problem.CodeRequired, "tracking_uri is required while mlops is enabled: give the URL of an MLflow tracking server, e.g. http://mlflow:5000 (or set enabled: false)")
		return
	}
	u, err := url.Parse(uri)
	switch {
	case err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
		return
	case err == nil && (u.Scheme == "" || u.Scheme == "file" || len(u.Scheme) == 1):
		probs.Add(field, problem.CodeInvalidValue, "%s is a local folder; execd sends runs to an MLflow tracking server only: %s", q(uri), fix)
	default:
		probs.Add(field, problem.CodeInvalidValue, "%s is not the http(s) URL of an MLflow tracking server (databricks, sqlite and other stores are not execd's): %s", q(uri), fix)
	}
}

// parseML decides whether node i is an ML node (see Node.ML).
func (r *resolver) parseML(i int32) {
	n := r.nodes[i]
	_, hasML := r.get(i, "ml")
	n.ML = hasML || n.Hyperparams != nil || r.ptype == TypeML
	v, ok := r.get(i, "mlops_enabled")
	if !ok || v == nil {
		return
	}
	b, ok := asBool(v)
	if !ok {
		r.add(r.field(i, "mlops_enabled"), problem.CodeInvalidType, "node %s: mlops_enabled must be true or false, got %s", q(n.Name), typeName(v))
		return
	}
	n.ML = n.ML && b
}
