// Package problem is how the engine reports bad input: every problem found,
// each with the field it concerns, a stable code and a message that says what
// to do. The gRPC layer turns a List into INVALID_ARGUMENT with a BadRequest.
package problem

import (
	"errors"
	"fmt"
	"strings"
)

// Stable codes. Clients may switch on them; never rename one.
const (
	CodeRequired          = "REQUIRED"
	CodeInvalidValue      = "INVALID_VALUE"
	CodeInvalidType       = "INVALID_TYPE"
	CodeInvalidDate       = "INVALID_DATE"
	CodeDateRange         = "DATE_RANGE"
	CodeUnknownPipeline   = "UNKNOWN_PIPELINE"
	CodeUnknownProject    = "UNKNOWN_PROJECT"
	CodeUnknownNode       = "UNKNOWN_NODE"
	CodeUnknownDependency = "UNKNOWN_DEPENDENCY"
	CodeMissingNodeConfig = "MISSING_NODE_CONFIG"
	CodeCycle             = "CYCLE"
	CodeInvalidOutputKey  = "INVALID_OUTPUT_KEY"
	CodeUnknownInput      = "UNKNOWN_INPUT"
	CodeUnknownOutput     = "UNKNOWN_OUTPUT"
	CodeInvalidFormat     = "INVALID_FORMAT"
	CodeIncompatible      = "INCOMPATIBLE"
	CodeInvalidFunction   = "INVALID_FUNCTION"
	CodeInvalidSelector   = "INVALID_SELECTOR"
	CodeConfigFile        = "CONFIG_FILE"
	CodeEnvironment       = "INVALID_ENVIRONMENT"
	CodeInterpolation     = "INTERPOLATION"
	CodePathNotFound      = "PATH_NOT_FOUND"
	CodeTooLarge          = "TOO_LARGE"
	CodeInvalidSQL        = "INVALID_SQL"
	CodeUnavailable       = "UNAVAILABLE"
)

// Problem is one thing wrong with a request or a configuration.
type Problem struct {
	// Field is a path such as "nodes.transform.dependencies[1]" or, for a
	// request, the request field ("start_date").
	Field string
	// Code is one of the Code constants.
	Code string
	// Message names what is wrong and how to fix it.
	Message string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// List is every problem found. As an error it reads as all of them.
type List []Problem

func (l List) Error() string {
	parts := make([]string, len(l))
	for i, p := range l {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// Add appends a problem.
func (l *List) Add(field, code, format string, args ...any) {
	*l = append(*l, Problem{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// From extracts the problems carried by err, if any.
func From(err error) (List, bool) {
	var l List
	if errors.As(err, &l) {
		return l, true
	}
	var p Problem
	if errors.As(err, &p) {
		return List{p}, true
	}
	return nil, false
}

// Error lets a single Problem be returned as an error.
func (p Problem) Error() string { return p.String() }
