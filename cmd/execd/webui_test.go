package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The web view is served on the API's address. Its page and bundle are
// public (the page asks for a token); the calls it makes are not.
func TestWebView_IsServedBesideTheAPIWhoseCallsNeedAToken(t *testing.T) {
	tokensPath, tokens := newTokens(t, "viewer")
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0", "--tokens", tokensPath)
	base := "http://" + d.addr

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/runs/run-x")
	switch resp.StatusCode {
	case http.StatusOK: // built with `make web`
		if !strings.Contains(page, `<div id="app">`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("a run's page: %q, CSP %q", page, resp.Header.Get("Content-Security-Policy"))
		}
		for _, asset := range regexp.MustCompile(`/assets/[^"]+`).FindAllString(page, -1) {
			if r, _ := get(asset); r.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", asset, r.StatusCode)
			}
		}
	case http.StatusServiceUnavailable: // a `go build` without the bundle
		if !strings.Contains(page, "run <code>make web</code>") {
			t.Fatalf("without the bundle: %q", page)
		}
	default:
		t.Fatalf("a run's page: %d %q", resp.StatusCode, page)
	}

	call := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/tauro.exec.v1.ExecService/GetCaller", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if r.StatusCode == http.StatusOK && !strings.Contains(string(b), `"role":"ROLE_VIEWER"`) {
			t.Errorf("GetCaller with the viewer's token: %s", b)
		}
		return r.StatusCode
	}
	if code := call(""); code != http.StatusUnauthorized {
		t.Errorf("GetCaller without a token: %d, want 401", code)
	}
	if code := call(tokens["viewer"]); code != http.StatusOK {
		t.Errorf("GetCaller with a token: %d, want 200", code)
	}
}
