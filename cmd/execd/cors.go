package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// corsPolicy decides which web pages, by origin, may call execd from a
// browser. With no origins only pages that execd serves itself (same
// origin) may call; every cross-origin preflight is refused.
type corsPolicy struct {
	anyOrigin bool
	origins   map[string]bool
}

// Request headers a Connect or gRPC-Web client sends, and the bearer token.
var corsAllowedHeaders = strings.Join([]string{
	"Authorization", "Content-Type", "Content-Encoding", "Accept-Encoding",
	"Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Accept-Encoding", "Connect-Content-Encoding",
	"Grpc-Timeout", "Grpc-Accept-Encoding", "Grpc-Message-Type", "X-Grpc-Web", "X-User-Agent",
}, ", ")

// Response headers a browser hides from scripts unless exposed: the status
// of a gRPC-Web call, and the encodings a Connect client must see.
var corsExposedHeaders = strings.Join([]string{
	"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Grpc-Encoding", "Grpc-Accept-Encoding",
	"Content-Encoding", "Connect-Content-Encoding", "Connect-Accept-Encoding",
}, ", ")

// parseCORSOrigins reads --cors-origins: a comma-separated list of origins
// (scheme://host[:port], as a browser sends them), or "*" for any.
func parseCORSOrigins(list string) (corsPolicy, error) {
	p := corsPolicy{origins: map[string]bool{}}
	for _, o := range splitList(list) {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return corsPolicy{}, fmt.Errorf("--cors-origins: %q is not an origin; write scheme://host[:port] "+
				"with no path, e.g. https://ui.example.com or http://localhost:5173, or * for any", o)
		}
		p.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return p, nil
}

func (p corsPolicy) allows(origin string) bool {
	return p.anyOrigin || p.origins[strings.ToLower(origin)]
}

// String lists the allowed origins for the start-up log.
func (p corsPolicy) String() string {
	if p.anyOrigin {
		return "*"
	}
	var out []string
	for o := range p.origins {
		out = append(out, o)
	}
	return strings.Join(out, ",")
}

// wrap answers preflights itself and marks the responses to allowed
// origins; requests without an Origin header (gRPC clients, curl, the
// page's own origin on GET) pass through untouched.
func (p corsPolicy) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := p.allows(origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !allowed {
				http.Error(w, "origin "+origin+" may not call this server; execd's --cors-origins names the origins that may", http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
			h.Set("Access-Control-Max-Age", "7200")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", corsExposedHeaders)
		}
		next.ServeHTTP(w, r)
	})
}
