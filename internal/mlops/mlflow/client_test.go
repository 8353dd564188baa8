package mlflow

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func testClient(t *testing.T, h http.HandlerFunc, cfg Config) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URI = srv.URL + "/prefix/"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestError_AnswersAreTypedAndClassified(t *testing.T) {
	cases := []struct {
		status    int
		body      string
		code      string
		retryable bool
	}{
		{400, `{"error_code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}`, CodeResourceAlreadyExists, false},
		{400, `{"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}`, CodeInvalidParameterValue, false},
		{404, `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"}`, CodeResourceDoesNotExist, false},
		{503, `{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "later"}`, CodeTemporarilyUnavailable, true},
		{429, `{"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}`, CodeRequestLimitExceeded, true},
		{500, `{"error_code": "INTERNAL_ERROR", "message": "boom"}`, "INTERNAL_ERROR", true},
		{502, `<html>Bad Gateway</html>`, "", true},
		{401, ``, "", false},
	}
	for _, tc := range cases {
		c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/prefix/api/2.0/mlflow/runs/get" || r.URL.Query().Get("run_id") != "r1" {
				t.Errorf("request to %s", r.URL)
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}, Config{})
		_, err := c.GetRun(context.Background(), "r1")
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("HTTP %d: %v is no *Error", tc.status, err)
		}
		if e.Status != tc.status || e.Code != tc.code || e.Message == "" || e.Call != "runs/get" {
			t.Errorf("HTTP %d %s: got %+v", tc.status, tc.body, e)
		}
		if e.Retryable() != tc.retryable || IsRetryable(err) != tc.retryable {
			t.Errorf("HTTP %d %s: retryable %v, want %v", tc.status, tc.code, e.Retryable(), tc.retryable)
		}
	}
}

func TestError_ASilentServerIsRetryableWithinTheTimeout(t *testing.T) {
	c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}, Config{Timeout: 300 * time.Millisecond})
	began := time.Now()
	_, err := c.GetRun(context.Background(), "r1")
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("the call took %s with a 300ms timeout", took)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || !errors.Is(err, context.DeadlineExceeded) || !e.Retryable() {
		t.Errorf("a server that never answers: %v, want a retryable *Error without status, over its deadline", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetRun(ctx, "r1"); !errors.As(err, &e) || IsRetryable(err) {
		t.Errorf("a call its caller canceled: %v, want an *Error that is not retryable", err)
	}
}

func TestAuth_BasicBeforeBearer(t *testing.T) {
	cases := []struct {
		auth Auth
		want string
	}{
		{Auth{Token: "tok"}, "Bearer tok"},
		{Auth{Token: "tok", Username: "u", Password: "p"}, "Basic dTpw"},
		{Auth{Username: "u"}, ""},
		{Auth{}, ""},
	}
	for _, tc := range cases {
		var got string
		c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
			got = r.Header.Get("Authorization")
			_, _ = w.Write([]byte(`{"run": {}}`))
		}, Config{Auth: tc.auth})
		if _, err := c.GetRun(context.Background(), "r1"); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%+v: Authorization %q, want %q", tc.auth, got, tc.want)
		}
	}
}

func TestAuthFromEnv(t *testing.T) {
	t.Setenv("MLFLOW_TRACKING_TOKEN", "tok")
	t.Setenv("MLFLOW_TRACKING_USERNAME", "u")
	t.Setenv("MLFLOW_TRACKING_PASSWORD", "p")
	if got := AuthFromEnv(); got != (Auth{Token: "tok", Username: "u", Password: "p"}) {
		t.Errorf("AuthFromEnv = %+v", got)
	}
}

func TestNew_RefusesWhatIsNoServerAddress(t *testing.T) {
	for _, uri := range []string{"", "file:///tmp/mlruns", "/tmp/mlruns", "databricks", "http://"} {
		if _, err := New(Config{URI: uri}); err == nil {
			t.Errorf("New(%q) gave a client", uri)
		}
	}
}
