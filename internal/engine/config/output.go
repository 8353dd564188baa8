package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// OutputKey is a tauro output key, schema.sub_folder.table, taken apart.
// Each part becomes a folder of the output path, which is why only letters,
// digits, '_' and '-' are allowed in them.
type OutputKey struct {
	Schema    string
	SubFolder string
	Table     string
}

// String is the key in its dotted form.
func (k OutputKey) String() string { return k.Schema + "." + k.SubFolder + "." + k.Table }

var outputKeyParts = [3]string{"schema", "sub_folder", "table"}

// ParseOutputKey reads "schema.sub_folder.table" or
// "schema/sub_folder/table"; like tauro, the two separators may be mixed.
// Unlike tauro, which drops empty parts, an empty part is an error: tauro
// would read "a/../b/c" as a.b.c, hiding a path-traversal attempt.
func ParseOutputKey(key string) (OutputKey, error) {
	s := strings.TrimSpace(key)
	if s == "" {
		return OutputKey{}, outputKeyProblem("output key is empty; write it as schema.sub_folder.table (or schema/sub_folder/table)")
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '/' })
	if len(parts) != strings.Count(s, ".")+strings.Count(s, "/")+1 {
		return OutputKey{}, outputKeyProblem("output key %s has invalid characters: '..', '//' or a separator at either end leaves a part empty; write it as schema.sub_folder.table using letters, digits, '_' and '-'", quoteShort(key))
	}
	if len(parts) != 3 {
		return OutputKey{}, outputKeyProblem("output key %s has %d part(s) but needs three parts: schema.sub_folder.table (or schema/sub_folder/table)", quoteShort(key), len(parts))
	}
	for i, p := range parts {
		if !isNameChars(p) {
			return OutputKey{}, outputKeyProblem("output key %s has invalid characters in '%s' (%s); use only letters, digits, '_' and '-'", quoteShort(key), outputKeyParts[i], quoteShort(p))
		}
	}
	return OutputKey{Schema: parts[0], SubFolder: parts[1], Table: parts[2]}, nil
}

func outputKeyProblem(format string, args ...any) error {
	return problem.Problem{Code: problem.CodeInvalidOutputKey, Message: fmt.Sprintf(format, args...)}
}

// OutputPath is where an output is written, following tauro's rule
// (io/output.py, PathResolver):
//
//	<output_path>/[<env>/]<schema>/<sub_folder>/<table>
//
// The env folder is added only for execution modes "local" and
// "distributed" ("databricks" is tauro's alias for it) and only when env is
// set; any other mode, such as "spark", writes without it. Mode is compared
// without regard to case. A URI output_path (s3://, abfss://, gs://, dbfs:/,
// any scheme:) is joined as text, keeping the scheme's slashes and adding no
// double slash; a local one is joined as a file path. env should come from
// NormalizeEnv and key from ParseOutputKey: both guarantee segments without
// separators or "..", so the result stays under outputPath.
func OutputPath(outputPath, mode, env string, key OutputKey) string {
	var parts []string
	switch strings.ToLower(strings.TrimSpace(mode)) {
	case "local", "distributed", "databricks":
		if env != "" {
			parts = append(parts, env)
		}
	}
	parts = append(parts, key.Schema, key.SubFolder, key.Table)
	scheme, rest, isURI := splitScheme(outputPath)
	if !isURI {
		return filepath.Join(append([]string{outputPath}, parts...)...)
	}
	trimmed := strings.TrimRight(rest, "/")
	if trimmed == "" { // "s3://" alone: keep the scheme's own slashes
		return scheme + rest + strings.Join(parts, "/")
	}
	return scheme + trimmed + "/" + strings.Join(parts, "/")
}

// splitScheme splits "s3://bkt/x" into "s3:" and "//bkt/x". A one-letter
// scheme is taken for a Windows drive, not a URI.
func splitScheme(p string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(p, ':')
	if i < 2 {
		return "", p, false
	}
	for k, r := range p[:i] {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !(letter || k > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return "", p, false
		}
	}
	if !strings.HasPrefix(p[i+1:], "/") {
		return "", p, false
	}
	return p[:i+1], p[i+1:], true
}

// HasScheme reports whether p is a URL (s3://bkt/x, abfss://..., dbfs:/x)
// rather than a file path.
func HasScheme(p string) bool {
	_, _, ok := splitScheme(p)
	return ok
}
