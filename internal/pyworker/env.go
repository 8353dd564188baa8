package pyworker

import (
	"slices"
	"strings"
)

// Workers run the project's code, so they get the few variables a Python
// process needs, not execd's whole environment with whatever secrets it
// holds. Config.PassEnv adds the ones a project asks for.

// BaseEnv names the variables of execd's environment every worker gets; a
// name ending in "*" is a prefix.
var BaseEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL",
	"LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
	"PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
	// Spark's client settings (SPARK_USER names the session's user) and the
	// trust roots a TLS connection to a cluster reads.
	"SPARK_*", "PYSPARK_*", "SSL_CERT_FILE", "SSL_CERT_DIR", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
}

// remoteEnv carries the workers' default Spark Connect URL: on the command
// line its token would show in ps.
const remoteEnv = "TAURO_WORKER_SPARK_REMOTE"

// workerEnv is the environment of a worker: the variables of environ that
// BaseEnv or pass name, then extra (NAME=value, winning over both).
func workerEnv(environ, pass, extra []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if ok && (matches(BaseEnv, name) || matches(pass, name)) {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

func matches(patterns []string, name string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(name, prefix)
		}
		return p == name
	})
}
