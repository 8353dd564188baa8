package config

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// standardEnvs are the environment names tauro knows without being told.
// Only these (and sandbox_<name>) fall back to base when env_config lacks
// them: a typo such as "prdo" must not quietly run with base's paths.
var standardEnvs = []string{"base", "dev", "sandbox", "staging", "prod"}

// envAliases are the spellings tauro accepts for its standard names.
var envAliases = map[string]string{
	"development": "dev",
	"production":  "prod",
	"test":        "sandbox",
	"testing":     "sandbox",
}

// maxEnvLen bounds an environment name; it becomes a folder in output paths.
const maxEnvLen = 64

const envHelp = "use base, dev, sandbox, staging, prod or sandbox_<name>"

// NormalizeEnv turns an environment name as a user typed it into the name
// used to look up env_config: trimmed, lower case, aliases mapped
// (production→prod, development→dev, test/testing→sandbox), and the
// developer part of sandbox_<name> reduced to [a-z0-9_] as tauro does.
// Because the result is also a folder of output paths, anything else must
// already be made of letters, digits, '_' and '-'.
func NormalizeEnv(name string) (string, error) {
	env := strings.ToLower(strings.TrimSpace(name))
	if env == "" {
		return "", envProblem("environment is required: " + envHelp)
	}
	if alias, ok := envAliases[env]; ok {
		return alias, nil
	}
	if dev, ok := strings.CutPrefix(env, "sandbox_"); ok {
		dev = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
				return r
			}
			return -1
		}, dev)
		if dev == "" {
			return "sandbox", nil
		}
		env = "sandbox_" + dev
	}
	if len(env) > maxEnvLen {
		return "", envProblem(fmt.Sprintf("environment name is %d characters long; use at most %d", len(env), maxEnvLen))
	}
	if !isNameChars(env) {
		return "", envProblem(fmt.Sprintf("environment %s may contain only letters, digits, '_' and '-' (it names a folder of output paths); %s", quoteShort(name), envHelp))
	}
	return env, nil
}

func envProblem(msg string) error {
	return problem.List{{Field: "env", Code: problem.CodeEnvironment, Message: msg}}
}

// isNameChars reports whether s is non-empty and made only of the
// characters tauro allows in names that become path segments.
func isNameChars(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// envPath is one merged path and the env_config entry that supplied it, so
// an error can point at the line to fix.
type envPath struct {
	path string
	from string
}

// MergeEnvPaths picks the env_config entry for the requested environment and
// lays its paths over base's, key by key (a shallow merge, as tauro does).
// The requested name is normalised first. An environment missing from
// env_config falls back: sandbox_<name> to sandbox, then any standard name to
// base. used is the entry whose paths won ("base" after a full fallback).
// Empty or null paths count as absent, so an env can unset a base path.
// Problem fields are relative to the settings descriptor
// ("env_config.dev.nodes_config_path").
func MergeEnvPaths(envConfig *Map, requested string) (paths map[string]string, used string, err error) {
	env, err := NormalizeEnv(requested)
	if err != nil {
		return nil, "", err
	}
	merged, used, problems := mergeEnvPaths(envConfig, env)
	if len(problems) > 0 {
		return nil, "", problems
	}
	paths = make(map[string]string, len(merged))
	for k, p := range merged {
		paths[k] = p.path
	}
	return paths, used, nil
}

// mergeEnvPaths does MergeEnvPaths' work for an already normalised env.
func mergeEnvPaths(envConfig *Map, env string) (map[string]envPath, string, problem.List) {
	var problems problem.List
	if envConfig.Len() == 0 {
		problems.Add("env_config", problem.CodeConfigFile,
			"env_config is missing or empty; map each environment (at least \"base\") to its config file paths")
		return nil, "", problems
	}
	used, ok := pickEnv(envConfig, env)
	if !ok {
		problems.Add("env_config", problem.CodeEnvironment, "%s", missingEnvMessage(envConfig, env))
		return nil, "", problems
	}
	merged := map[string]envPath{}
	layers := []string{"base"}
	if used != "base" {
		layers = append(layers, used)
	}
	for _, name := range layers {
		raw, present := envConfig.Get(name)
		if !present {
			continue
		}
		entry, isMap := raw.(*Map)
		if !isMap {
			if raw != nil {
				problems.Add("env_config."+name, problem.CodeInvalidType,
					"must be a mapping of config keys (such as nodes_config_path) to file paths, found %s", describe(raw))
			}
			continue
		}
		for _, key := range entry.Keys {
			switch v := entry.Values[key].(type) {
			case string:
				merged[key] = envPath{path: v, from: name}
			case nil:
				merged[key] = envPath{from: name}
			default:
				problems.Add("env_config."+name+"."+key, problem.CodeInvalidType,
					"must be a file path string, found %s", describe(v))
			}
		}
	}
	for k, p := range merged {
		if strings.TrimSpace(p.path) == "" {
			delete(merged, k)
		}
	}
	return merged, used, problems
}

// pickEnv chooses the env_config entry for env, following tauro's fallback.
func pickEnv(envConfig *Map, env string) (string, bool) {
	has := func(name string) bool { _, ok := envConfig.Get(name); return ok }
	if has(env) {
		return env, true
	}
	sandboxed := strings.HasPrefix(env, "sandbox_")
	if sandboxed && has("sandbox") {
		return "sandbox", true
	}
	if (sandboxed || isStandardEnv(env)) && has("base") {
		return "base", true
	}
	return "", false
}

func isStandardEnv(env string) bool {
	for _, s := range standardEnvs {
		if s == env {
			return true
		}
	}
	return false
}

func missingEnvMessage(envConfig *Map, env string) string {
	defined := strings.Join(envConfig.Keys, ", ")
	if !strings.HasPrefix(env, "sandbox_") && !isStandardEnv(env) {
		return fmt.Sprintf("unknown environment %q: env_config defines %s; use one of those, add env_config.%s, or use a standard name (base, dev, sandbox, staging, prod, sandbox_<name>) to fall back to base",
			env, defined, env)
	}
	return fmt.Sprintf("environment %q is not in env_config and there is no \"base\" entry to fall back to (defined: %s); add env_config.%s or env_config.base",
		env, defined, env)
}

// describe names a decoded value's type the way a YAML author thinks of it.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case string:
		return "the string " + quoteShort(v)
	case []any:
		return "a list"
	case *Map:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// quoteShort quotes s for a message, cut short so that hostile input cannot
// make an error message megabytes long.
func quoteShort(s string) string {
	const max = 80
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}
