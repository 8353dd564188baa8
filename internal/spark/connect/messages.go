package connect

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The protocol messages this package sends, each kind built by one pure
// function from typed values. A builder knows nothing of the session or the
// network, so messages_test.go can build every kind and check it against the
// protocol descriptors without a server: a misspelt field name fails there,
// not against a live Spark.

// relation is a spark.connect.Relation and command a spark.connect.Command,
// in protojson form.
type (
	relation obj
	command  obj
)

// rpc is one request of the SparkConnectService: its method, the names of
// its request and response messages, and the request in protojson form.
type rpc struct {
	method   string
	request  string
	response string
	body     obj
}

// namedTable reads a table or a view by its (possibly qualified) name.
func namedTable(identifier string, options map[string]string) relation {
	named := obj{"unparsedIdentifier": identifier}
	if len(options) > 0 {
		named["options"] = options
	}
	return relation{"read": obj{"namedTable": named}}
}

// dataSource reads path with a data source, as DataFrameReader.load does;
// schema is DDL, "" to infer it.
func dataSource(format, path, schema string, options map[string]string) relation {
	src := obj{"format": format, "paths": []string{path}}
	if schema != "" {
		src["schema"] = schema
	}
	if len(options) > 0 {
		src["options"] = options
	}
	return relation{"read": obj{"dataSource": src}}
}

// filtered keeps the rows of input that match the SQL condition.
func filtered(input relation, condition string) relation {
	return relation{"filter": obj{"input": input, "condition": obj{"expressionString": obj{"expression": condition}}}}
}

// bindAlias names the placeholder reference of a parameterized query (see
// sqlRelation); the server makes it a temporary view for the moment it
// parses the query.
const bindAlias = "__tauro_bind_parameters"

// sqlRelation is a SQL relation with params as named arguments.
//
// A parameterized query is sent as the root of a WithRelations with one
// placeholder reference, the form PySpark uses for spark.sql with DataFrame
// arguments. The server parses that form with SparkSession.sql, which binds
// the parameters in the analyzer under the session default
// spark.sql.legacy.parameterSubstitution.constantsOnly=true; a bare SQL
// relation goes straight to the session's parser, and Delta Lake's parser
// drops the parameters (delta-io/delta#7640).
func sqlRelation(query string, params map[string]any) (relation, error) {
	rel := obj{"query": query}
	if len(params) == 0 {
		return relation{"sql": rel}, nil
	}
	args := obj{}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		lit, err := literal(params[k])
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", k, err)
		}
		args[k] = obj{"literal": lit}
	}
	rel["namedArguments"] = args
	placeholder := obj{"subqueryAlias": obj{"input": obj{"range": obj{"end": "1", "step": "1"}}, "alias": bindAlias}}
	return relation{"withRelations": obj{"root": obj{"sql": rel}, "references": []obj{placeholder}}}, nil
}

// literal is v as a Spark Connect literal (spark.connect.Expression.Literal).
// A time.Time at midnight UTC is a DATE, any other a TIMESTAMP.
func literal(v any) (obj, error) {
	switch x := v.(type) {
	case nil:
		return obj{"null": obj{"null": obj{}}}, nil
	case string:
		return obj{"string": x}, nil
	case bool:
		return obj{"boolean": x}, nil
	case int:
		return obj{"long": strconv.Itoa(x)}, nil
	case int32:
		return obj{"integer": x}, nil
	case int64:
		return obj{"long": strconv.FormatInt(x, 10)}, nil
	case float64:
		return obj{"double": x}, nil
	case time.Time:
		u := x.UTC()
		if u.Equal(u.Truncate(24 * time.Hour)) {
			return obj{"date": u.Unix() / 86400}, nil
		}
		return obj{"timestamp": strconv.FormatInt(u.UnixMicro(), 10)}, nil
	}
	return nil, fmt.Errorf("a %T cannot be a SQL parameter; use a string, number, bool or time.Time", v)
}

// rowsMetric is the metric countingRows observes: the number of rows.
const rowsMetric = "rows"

// Metric is an aggregate a write observes: Spark SQL text such as
// "count_if(amount > 0)", reported under Name.
type Metric struct{ Name, SQL string }

// countingRows is input observed as Dataset.observe does: the server
// reports the rows (count(1), or the SQL aggregate rows when it is set)
// AS rows, and each of extra, under observation once the plan has run.
// planID tells the plan's relations apart.
func countingRows(input relation, observation, planID, rows string, extra ...Metric) relation {
	count := obj{"unresolvedFunction": obj{"functionName": "count", "arguments": []obj{{"literal": obj{"integer": 1}}}}}
	if rows != "" {
		count = obj{"expressionString": obj{"expression": rows}}
	}
	metrics := []obj{{"alias": obj{"expr": count, "name": []string{rowsMetric}}}}
	for _, m := range extra {
		metrics = append(metrics, obj{"alias": obj{"expr": obj{"expressionString": obj{"expression": m.SQL}}, "name": []string{m.Name}}})
	}
	return relation{
		"common":         obj{"planId": planID},
		"collectMetrics": obj{"input": input, "name": observation, "metrics": metrics},
	}
}

// createDataframeView makes input a temporary view, global or of the
// session, replacing one of the same name.
func createDataframeView(name string, input relation, global bool) command {
	return command{"createDataframeView": obj{
		"input":    input,
		"name":     quote(name),
		"isGlobal": global,
		"replace":  true,
	}}
}

// writeOperation writes input to path as DataFrameWriter.save does; input
// is a view observed by countingRows, so the rows written are counted by
// the job that writes them. mode is a spark.connect.WriteOperation.SaveMode
// name.
func writeOperation(input relation, format, path, mode string, partitionBy []string, options map[string]string) command {
	write := obj{
		"input":  input,
		"source": strings.ToLower(format),
		"mode":   mode,
	}
	if path != "" { // a kafka output writes to its topic option
		write["path"] = path
	}
	if len(partitionBy) > 0 {
		write["partitioningColumns"] = partitionBy
	}
	if len(options) > 0 {
		write["options"] = options
	}
	return command{"writeOperation": write}
}

// executePlanRequest runs cmd in the session as the operation operationID.
func executePlanRequest(sessionID, user, operationID string, cmd command) rpc {
	return rpc{
		method:   methodExecutePlan,
		request:  "ExecutePlanRequest",
		response: "ExecutePlanResponse",
		body: obj{
			"sessionId":   sessionID,
			"userContext": obj{"userId": user},
			"clientType":  userAgent,
			"operationId": operationID,
			"plan":        obj{"command": cmd},
		},
	}
}

// reattachableExecutePlanRequest runs cmd as executePlanRequest does, but
// reattachable: the server keeps the operation and its responses when the
// call breaks (the client died, the stream reached its time limit), until
// a ReattachExecute takes them up or the operation has been left without a
// client for spark.connect.execute.manager.detachedTimeout.
func reattachableExecutePlanRequest(sessionID, user, operationID string, cmd command) rpc {
	call := executePlanRequest(sessionID, user, operationID, cmd)
	call.body["requestOptions"] = []obj{{"reattachOptions": obj{"reattachable": true}}}
	return call
}

// reattachExecuteRequest takes up a reattachable operation's responses
// after lastResponseID, or from the first the server still holds when it
// is "".
func reattachExecuteRequest(sessionID, user, operationID, lastResponseID string) rpc {
	body := obj{
		"sessionId":   sessionID,
		"userContext": obj{"userId": user},
		"clientType":  userAgent,
		"operationId": operationID,
	}
	if lastResponseID != "" {
		body["lastResponseId"] = lastResponseID
	}
	return rpc{method: methodReattachExecute, request: "ReattachExecuteRequest", response: "ExecutePlanResponse", body: body}
}

// releaseExecuteRequest frees a reattachable operation and every response
// the server holds for it.
func releaseExecuteRequest(sessionID, user, operationID string) rpc {
	return rpc{
		method:   methodReleaseExecute,
		request:  "ReleaseExecuteRequest",
		response: "ReleaseExecuteResponse",
		body: obj{
			"sessionId":   sessionID,
			"userContext": obj{"userId": user},
			"clientType":  userAgent,
			"operationId": operationID,
			"releaseAll":  obj{},
		},
	}
}

// interruptRequest stops one operation of the session, or all of them when
// operationID is "".
func interruptRequest(sessionID, user, operationID string) rpc {
	body := obj{
		"sessionId":     sessionID,
		"userContext":   obj{"userId": user},
		"clientType":    userAgent,
		"interruptType": "INTERRUPT_TYPE_ALL",
	}
	if operationID != "" {
		body["interruptType"] = "INTERRUPT_TYPE_OPERATION_ID"
		body["operationId"] = operationID
	}
	return rpc{method: methodInterrupt, request: "InterruptRequest", response: "InterruptResponse", body: body}
}

// configSetRequest sets conf on the session; the first request of a
// session opens it on the server.
func configSetRequest(sessionID, user string, conf map[string]string) rpc {
	pairs := make([]obj, 0, len(conf))
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		pairs = append(pairs, obj{"key": k, "value": conf[k]})
	}
	return rpc{
		method:   methodConfig,
		request:  "ConfigRequest",
		response: "ConfigResponse",
		body: obj{
			"sessionId":   sessionID,
			"userContext": obj{"userId": user},
			"clientType":  userAgent,
			"operation":   obj{"set": obj{"pairs": pairs}},
		},
	}
}

// releaseSessionRequest ends the server-side session.
func releaseSessionRequest(sessionID, user string) rpc {
	return rpc{
		method:   methodReleaseSession,
		request:  "ReleaseSessionRequest",
		response: "ReleaseSessionResponse",
		body: obj{
			"sessionId":   sessionID,
			"userContext": obj{"userId": user},
			"clientType":  userAgent,
		},
	}
}
