package webui

import (
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var built = fstest.MapFS{
	"index.html":          {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc.js"></script>`)},
	"assets/index-abc.js": {Data: []byte(`console.log("app")`)},
	"favicon.svg":         {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
}

func TestHandler_ServesTheAppOnItsRoutes(t *testing.T) {
	h := handler(built)
	for _, p := range []string{"/", "/runs", "/runs/r-123", "/runs/r-123/", "/index.html"} {
		r := get(t, h, http.MethodGet, p)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", p, r.StatusCode)
		}
		if b := body(t, r); !strings.Contains(b, "/assets/index-abc.js") {
			t.Fatalf("GET %s: not the app's index.html: %q", p, b)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-cache" {
			t.Fatalf("GET %s: Cache-Control %q; index.html must be revalidated so a new build is seen", p, got)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Fatalf("GET %s: Content-Security-Policy %q keeps the page to its origin", p, csp)
		}
	}
}

func TestHandler_ServesAssetsImmutable(t *testing.T) {
	r := get(t, handler(built), http.MethodGet, "/assets/index-abc.js")
	if r.StatusCode != http.StatusOK || body(t, r) != `console.log("app")` {
		t.Fatalf("asset: status %d", r.StatusCode)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("asset Content-Type %q, want text/javascript", ct)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Fatalf("asset Cache-Control %q: hashed names may be cached for good", cc)
	}
}

func TestHandler_GzipsScriptsForBrowsersThatTakeIt(t *testing.T) {
	h := handler(built)
	for _, ae := range []string{"gzip, deflate, br", "br;q=1.0, gzip;q=0.8"} {
		req := httptest.NewRequest(http.MethodGet, "/assets/index-abc.js", nil)
		req.Header.Set("Accept-Encoding", ae)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		r := rec.Result()
		if r.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q, Content-Type %q", ae, r.Header.Get("Content-Encoding"), r.Header.Get("Content-Type"))
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(zr); string(b) != `console.log("app")` {
			t.Fatalf("gunzipped: %q", b)
		}
	}
	for _, ae := range []string{"", "br", "gzip;q=0"} {
		req := httptest.NewRequest(http.MethodGet, "/assets/index-abc.js", nil)
		req.Header.Set("Accept-Encoding", ae)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if ce := rec.Result().Header.Get("Content-Encoding"); ce != "" || rec.Body.String() != `console.log("app")` {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q, body %q", ae, ce, rec.Body.String())
		}
	}
}

func TestHandler_UnknownPathsAndMethods(t *testing.T) {
	h := handler(built)
	cases := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/assets/missing.js", http.StatusNotFound},
		{http.MethodGet, "/nothing-here", http.StatusNotFound},
		{http.MethodGet, "/../../etc/passwd", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodPost, "/no.such.Service/Method", http.StatusNotFound},
		{http.MethodHead, "/runs/x", http.StatusOK},
	}
	for _, c := range cases {
		if r := get(t, h, c.method, c.path); r.StatusCode != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, r.StatusCode, c.want)
		}
	}
}

func TestHandler_WithoutTheBundleSaysHowToBuildIt(t *testing.T) {
	h := handler(nil)
	for _, p := range []string{"/", "/runs/r-1"} {
		r := get(t, h, http.MethodGet, p)
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET %s without a bundle: status %d, want 503", p, r.StatusCode)
		}
		if b := body(t, r); !strings.Contains(b, "Web view not built: run <code>make web</code>") {
			t.Fatalf("GET %s without a bundle: %q", p, b)
		}
	}
	if r := get(t, h, http.MethodGet, "/assets/index-abc.js"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("an asset without a bundle: status %d, want 404", r.StatusCode)
	}
}

// The embedded folder is valid with or without `make web`: a fresh clone
// serves the "not built" page, a built one its index.html.
func TestHandler_Embedded(t *testing.T) {
	_, err := fs.Stat(dist, bundleDir+"/index.html")
	builtHere := err == nil
	r := get(t, Handler(), http.MethodGet, "/")
	switch b := body(t, r); {
	case builtHere && (r.StatusCode != http.StatusOK || !strings.Contains(b, `<div id="app"`)):
		t.Fatalf("built bundle: status %d, body %.200q", r.StatusCode, b)
	case !builtHere && r.StatusCode != http.StatusServiceUnavailable:
		t.Fatalf("no bundle: status %d, want 503", r.StatusCode)
	}
}
