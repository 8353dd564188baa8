package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCORSOrigins_AcceptsOriginsAndRefusesWhatIsNotOne(t *testing.T) {
	for _, c := range []struct {
		list    string
		allowed []string
		denied  []string
		bad     bool
	}{
		{list: "", denied: []string{"http://localhost:5173"}},
		{list: "*", allowed: []string{"https://any.example", "http://localhost:1"}},
		{list: "https://UI.example.com/, http://localhost:5173", allowed: []string{"https://ui.example.com", "http://localhost:5173"},
			denied: []string{"http://ui.example.com", "https://ui.example.com:8443", "http://localhost:5174"}},
		{list: "ui.example.com", bad: true},
		{list: "https://ui.example.com/app", bad: true},
		{list: "ftp://ui.example.com", bad: true},
		{list: "https://user@ui.example.com", bad: true},
	} {
		p, err := parseCORSOrigins(c.list)
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), "--cors-origins") {
				t.Errorf("%q: %v, want an error naming --cors-origins", c.list, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.list, err)
			continue
		}
		for _, o := range c.allowed {
			if !p.allows(o) {
				t.Errorf("%q does not allow %s", c.list, o)
			}
		}
		for _, o := range c.denied {
			if p.allows(o) {
				t.Errorf("%q allows %s", c.list, o)
			}
		}
	}
}

func TestCORS_RequestsWithoutAnOriginPassUntouched(t *testing.T) {
	p, _ := parseCORSOrigins("https://ui.example.com")
	reached := 0
	h := p.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/tauro.exec.v1.ExecService/GetRun", nil))
	if reached != 1 || len(rec.Header()) != 0 {
		t.Errorf("a request without Origin: reached %d, headers %v", reached, rec.Header())
	}
	// A preflight never reaches the RPC handler, allowed or not.
	for _, origin := range []string{"https://ui.example.com", "https://other.example"} {
		req := httptest.NewRequest(http.MethodOptions, "/tauro.exec.v1.ExecService/GetRun", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if reached != 1 {
		t.Errorf("a preflight reached the RPC handler")
	}
}
