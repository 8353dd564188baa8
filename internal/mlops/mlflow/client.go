// Package mlflow is a client of MLflow's tracking server REST API
// (/api/2.0/mlflow/...): experiments, runs, batched logging and the model
// registry, the calls execd makes to mirror its runs in MLflow. Times are
// milliseconds since the epoch and ids are strings, as in the API.
//
// The client does not retry: an *Error says whether a call may succeed when
// sent again (Retryable), and the caller decides when.
package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultTimeout bounds a call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures a Client. URI is required.
type Config struct {
	// URI is the tracking server, http(s)://host[:port][/prefix].
	URI string
	// HTTPClient sends the requests; nil is http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each call, its answer read included; zero is
	// DefaultTimeout.
	Timeout time.Duration
	// Auth is sent with every request.
	Auth Auth
}

// Auth is how the client authenticates: basic authentication when Username
// and Password are set, else a bearer Token when set, else none (MLflow's
// own clients' order).
type Auth struct {
	Token              string
	Username, Password string
}

// AuthFromEnv reads the variables MLflow's own clients read:
// MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME and
// MLFLOW_TRACKING_PASSWORD.
func AuthFromEnv() Auth {
	return Auth{
		Token:    os.Getenv("MLFLOW_TRACKING_TOKEN"),
		Username: os.Getenv("MLFLOW_TRACKING_USERNAME"),
		Password: os.Getenv("MLFLOW_TRACKING_PASSWORD"),
	}
}

// Client calls one tracking server. It is safe for concurrent use.
type Client struct {
	base    string // URI + /api/2.0/mlflow/
	http    *http.Client
	timeout time.Duration
	auth    Auth
}

// New returns a client of the server cfg.URI names.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("mlflow: tracking URI %q: %w", cfg.URI, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mlflow: tracking URI %q is not an http(s) server address", cfg.URI)
	}
	c := &Client{
		base:    strings.TrimRight(cfg.URI, "/") + "/api/2.0/mlflow/",
		http:    cfg.HTTPClient,
		timeout: cfg.Timeout,
		auth:    cfg.Auth,
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

// MLflow's error codes (databricks.proto's ErrorCode) that callers act on.
const (
	CodeInvalidParameterValue  = "INVALID_PARAMETER_VALUE"
	CodeResourceAlreadyExists  = "RESOURCE_ALREADY_EXISTS"
	CodeResourceDoesNotExist   = "RESOURCE_DOES_NOT_EXIST"
	CodeTemporarilyUnavailable = "TEMPORARILY_UNAVAILABLE"
	CodeRequestLimitExceeded   = "REQUEST_LIMIT_EXCEEDED"
)

// Error is a call that failed: the server's answer (Status, and Code and
// Message from its error body), or no answer (Status 0, Err says why: the
// server down, a timeout). A request the client refused to send, a batch
// over MLflow's length limits, has Status 0, no Err and Code
// INVALID_PARAMETER_VALUE.
type Error struct {
	Call    string // the API path, e.g. "runs/log-batch"
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("mlflow: %s: no answer: %v", e.Call, e.Err)
	case e.Status == 0:
		return fmt.Sprintf("mlflow: %s: %s: %s (not sent)", e.Call, e.Code, e.Message)
	case e.Code == "":
		return fmt.Sprintf("mlflow: %s: HTTP %d: %s", e.Call, e.Status, e.Message)
	}
	return fmt.Sprintf("mlflow: %s: %s (HTTP %d): %s", e.Call, e.Code, e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable says whether the same call may succeed later: no answer
// (unless the caller canceled it), or an answer that says the server is
// busy or failing, the HTTP statuses MLflow's own clients retry.
func (e *Error) Retryable() bool {
	if e.Err != nil {
		return !errors.Is(e.Err, context.Canceled)
	}
	switch e.Code {
	case CodeTemporarilyUnavailable, CodeRequestLimitExceeded:
		return true
	}
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// IsRetryable says whether err is an *Error that is Retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// HasCode says whether err is an *Error with MLflow's error code code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// post sends body as JSON to the API path call and decodes the answer
// into out (nil: the answer is not read).
func (c *Client) post(ctx context.Context, call string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("mlflow: %s: encoding the request: %w", call, err)
	}
	return c.do(ctx, http.MethodPost, call, nil, b, out)
}

// get sends a GET to the API path call with query and decodes the answer
// into out.
func (c *Client) get(ctx context.Context, call string, query url.Values, out any) error {
	return c.do(ctx, http.MethodGet, call, query, nil, out)
}

func (c *Client) do(ctx context.Context, method, call string, query url.Values, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + call
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return fmt.Errorf("mlflow: %s: %w", call, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "tauro-exec")
	switch a := c.auth; {
	case a.Username != "" && a.Password != "":
		req.SetBasicAuth(a.Username, a.Password)
	case a.Token != "":
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{Call: call, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError(call, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		// A body cut short by the timeout is no answer; anything else is
		// an answer this client cannot read.
		if ctx.Err() != nil {
			return &Error{Call: call, Err: ctx.Err()}
		}
		return &Error{Call: call, Status: resp.StatusCode, Message: "reading the answer: " + err.Error()}
	}
	return nil
}

// answerError reads MLflow's error body ({"error_code": ..., "message":
// ...}); a body that is not one (a proxy's page) becomes the message.
func answerError(call string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Call: call, Status: resp.StatusCode}
	var body struct {
		Code    string `json:"error_code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &body) == nil && body.Code != "" {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = resp.Status
		}
	}
	return e
}
