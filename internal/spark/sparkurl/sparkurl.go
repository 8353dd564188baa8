// Package sparkurl reads Spark Connect connection strings,
// sc://host[:port][/;key=value;...], and decides once how to reach the
// server they name: its address, whether the connection uses TLS, and the
// bearer token it sends.
//
// A token is a secret, so it travels only over TLS, except to a loopback
// host: the embedded server listens on 127.0.0.1 without TLS, and nothing
// leaves the machine. PySpark decides the same way for "localhost".
package sparkurl

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultPort is Spark Connect's port when the URL names none.
const DefaultPort = 15002

// Remote is a parsed connection string. spark-connect-go has its own parser,
// but it drops a value that contains '=' (a base64 token); this one keeps
// every value whole.
type Remote struct {
	// Addr is host:port.
	Addr string
	Host string
	// Token is sent as "authorization: Bearer TOKEN" with every call.
	Token string
	// TLS is true with use_ssl=true, or with a token to a host that is not
	// loopback.
	TLS bool
	// User is user_id, empty when the URL has none.
	User string
	// SessionID is session_id, empty when the URL has none.
	SessionID string
	// Headers are the other parameters, sent as request metadata as the
	// Spark Connect clients do (user_agent is dropped: clients set their own).
	Headers map[string]string
}

// Parse reads s. A token to a host that is not loopback with use_ssl=false
// is refused: it would cross the network in the clear.
func Parse(s string) (Remote, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Remote{}, fmt.Errorf("spark remote %q: %w", Redact(s), err)
	}
	if u.Scheme != "sc" || u.Hostname() == "" {
		return Remote{}, fmt.Errorf("spark remote %q: want sc://host[:port][/;key=value...]", Redact(s))
	}
	if u.Path != "" && !strings.HasPrefix(u.Path, "/;") {
		return Remote{}, fmt.Errorf("spark remote %q: parameters go after '/;', as in sc://host:15002/;token=...", Redact(s))
	}
	port := DefaultPort
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return Remote{}, fmt.Errorf("spark remote %q: bad port %q", Redact(s), p)
		}
	}
	r := Remote{Addr: net.JoinHostPort(u.Hostname(), strconv.Itoa(port)), Host: u.Hostname(), Headers: map[string]string{}}
	useSSL := ""
	for _, kv := range strings.Split(strings.TrimPrefix(u.Path, "/"), ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Remote{}, fmt.Errorf("spark remote %q: parameter %q is not key=value", Redact(s), kv)
		}
		switch k {
		case "token":
			r.Token = v
		case "use_ssl":
			useSSL = strings.ToLower(v)
		case "user_id":
			r.User = v
		case "session_id":
			r.SessionID = v
		case "user_agent":
		default:
			r.Headers[k] = v
		}
	}
	switch {
	case useSSL == "true":
		r.TLS = true
	case r.Token != "" && !r.Loopback():
		if useSSL == "false" {
			return Remote{}, fmt.Errorf("spark remote %q: a token is sent only over TLS to a host that is not loopback; remove use_ssl=false", Redact(s))
		}
		r.TLS = true
	}
	return r, nil
}

// Loopback reports a host that is this machine: localhost or a loopback IP.
func (r Remote) Loopback() bool {
	if strings.EqualFold(r.Host, "localhost") {
		return true
	}
	ip := net.ParseIP(r.Host)
	return ip != nil && ip.IsLoopback()
}

// DialOptions are the transport credentials and the token of r.
func (r Remote) DialOptions() []grpc.DialOption {
	var opts []grpc.DialOption
	if r.TLS {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if r.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: r.Token, overTLS: r.TLS}))
	}
	return opts
}

// bearer sends the token. Parse allows a token without TLS only to a
// loopback host, so requiring transport security is decided there.
type bearer struct {
	token   string
	overTLS bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.overTLS }

// Redact returns s with the token's value replaced by "***", for logs and
// error messages. It works on text that does not parse, too.
func Redact(s string) string {
	const key = ";token="
	i := strings.Index(s, key)
	if i < 0 {
		return s
	}
	start := i + len(key)
	end := strings.IndexByte(s[start:], ';')
	if end < 0 {
		return s[:start] + "***"
	}
	return s[:start] + "***" + Redact(s[start+end:])
}
