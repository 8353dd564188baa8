package sparkurl

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	none := map[string]string{}
	cases := []struct {
		name    string
		in      string
		want    Remote
		wantErr string
	}{
		{name: "default port", in: "sc://localhost",
			want: Remote{Addr: "localhost:15002", Host: "localhost", Headers: none}},
		{name: "port", in: "sc://127.0.0.1:4040",
			want: Remote{Addr: "127.0.0.1:4040", Host: "127.0.0.1", Headers: none}},
		{name: "a token to another host implies TLS and keeps '=' in values", in: "sc://h:1/;token=abc==;x-db=prod;user_id=ann",
			want: Remote{Addr: "h:1", Host: "h", Token: "abc==", TLS: true, User: "ann", Headers: map[string]string{"x-db": "prod"}}},
		{name: "use_ssl", in: "sc://h/;use_ssl=true",
			want: Remote{Addr: "h:15002", Host: "h", TLS: true, Headers: none}},
		{name: "a token to 127.0.0.1 goes without TLS", in: "sc://127.0.0.1:4040/;token=t",
			want: Remote{Addr: "127.0.0.1:4040", Host: "127.0.0.1", Token: "t", Headers: none}},
		{name: "a token to localhost goes without TLS", in: "sc://localhost:4040/;token=t",
			want: Remote{Addr: "localhost:4040", Host: "localhost", Token: "t", Headers: none}},
		{name: "a token to ::1 goes without TLS", in: "sc://[::1]:4040/;token=t",
			want: Remote{Addr: "[::1]:4040", Host: "::1", Token: "t", Headers: none}},
		{name: "a token to loopback over TLS when asked", in: "sc://localhost:4040/;use_ssl=true;token=t",
			want: Remote{Addr: "localhost:4040", Host: "localhost", Token: "t", TLS: true, Headers: none}},
		{name: "session id", in: "sc://h/;session_id=6e5f0b5c-0000-4000-8000-000000000000",
			want: Remote{Addr: "h:15002", Host: "h", SessionID: "6e5f0b5c-0000-4000-8000-000000000000", Headers: none}},
		{name: "a token in the clear to another host", in: "sc://h:1/;token=secret;use_ssl=false", wantErr: "only over TLS"},
		{name: "another scheme", in: "http://h:1", wantErr: "want sc://"},
		{name: "a path", in: "sc://h:1/path", wantErr: "after '/;'"},
		{name: "no value", in: "sc://h:1/;novalue", wantErr: "not key=value"},
		{name: "no host", in: "sc://", wantErr: "want sc://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want an error with %q", c.in, got, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
		})
	}
}

func TestBearer_RequiresTLSExactlyWhenTheRemoteUsesIt(t *testing.T) {
	for _, in := range []string{"sc://127.0.0.1:1/;token=t", "sc://h:1/;token=t"} {
		r, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := (bearer{token: r.Token, overTLS: r.TLS}).RequireTransportSecurity(); got != r.TLS {
			t.Errorf("%s: RequireTransportSecurity = %v, want %v", in, got, r.TLS)
		}
	}
}

func TestRedact_HidesEveryTokenValue(t *testing.T) {
	cases := map[string]string{
		"sc://h:1":                             "sc://h:1",
		"sc://h:1/;token=abc==":                "sc://h:1/;token=***",
		"sc://h:1/;user_id=a;token=abc;x=1":    "sc://h:1/;user_id=a;token=***;x=1",
		"sc://h:1/;token=a;token=b":            "sc://h:1/;token=***;token=***",
		"not a url at all ;token=abc and more": "not a url at all ;token=***",
	}
	for in, want := range cases {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
