package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Option configures Dial.
type Option func(*config)

type config struct {
	token      TokenSource
	tls        *tls.Config
	userAgent  string
	project    string
	projectSet bool
	dialOpts   []grpc.DialOption
	retryFor   time.Duration
	reconnects time.Duration
}

// TokenSource returns the bearer token for a call; it is called for every
// call, so it may refresh a token that expires.
type TokenSource func(ctx context.Context) (string, error)

func staticToken(tok string) TokenSource {
	return func(context.Context) (string, error) { return tok, nil }
}

// WithToken sends a bearer token (default $TAURO_EXEC_TOKEN). A token goes
// over TLS unless execd is on this machine (a loopback address).
func WithToken(token string) Option { return func(c *config) { c.token = staticToken(token) } }

// WithTokenSource sends the token src returns on each call.
func WithTokenSource(src TokenSource) Option { return func(c *config) { c.token = src } }

// WithTLS uses TLS with the system's roots.
func WithTLS() Option { return func(c *config) { c.tlsConfig() } }

// WithRootCAs uses TLS, trusting pool instead of the system's roots.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) { c.tlsConfig().RootCAs = pool }
}

// WithClientCertificate uses mutual TLS with this certificate.
func WithClientCertificate(cert tls.Certificate) Option {
	return func(c *config) { t := c.tlsConfig(); t.Certificates = append(t.Certificates, cert) }
}

// WithTLSConfig uses TLS configured by cfg; later TLS options amend a clone.
func WithTLSConfig(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg.Clone() } }

// WithUserAgent names the caller in execd's logs.
func WithUserAgent(ua string) Option { return func(c *config) { c.userAgent = ua } }

// WithProject names the project of calls about pipelines and of listings
// when they name none (default $TAURO_EXEC_PROJECT); "" means execd's only
// project, and listings of every project the caller may view.
func WithProject(project string) Option {
	return func(c *config) { c.project, c.projectSet = project, true }
}

// WithUnaryInterceptor and WithStreamInterceptor add interceptors (tracing,
// logging) to every call.
func WithUnaryInterceptor(i ...grpc.UnaryClientInterceptor) Option {
	return WithDialOptions(grpc.WithChainUnaryInterceptor(i...))
}

func WithStreamInterceptor(i ...grpc.StreamClientInterceptor) Option {
	return WithDialOptions(grpc.WithChainStreamInterceptor(i...))
}

// WithDialOptions adds gRPC dial options, after the client's own.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOpts = append(c.dialOpts, opts...) }
}

// WithRetryTimeout bounds how long a call that is safe to repeat (reads,
// Execute and Repair with their request id) is retried while execd is
// UNAVAILABLE; 0 makes each call once.
func WithRetryTimeout(d time.Duration) Option { return func(c *config) { c.retryFor = d } }

// WithReconnectTimeout bounds how long Watch and Wait keep reconnecting
// without receiving an event while execd is unreachable.
func WithReconnectTimeout(d time.Duration) Option { return func(c *config) { c.reconnects = d } }

func (c *config) tlsConfig() *tls.Config {
	if c.tls == nil {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.tls
}

// dialOptions mirrors the CLI's credentials: a token never crosses the
// network in the clear, so one to another machine implies TLS.
func (c *config) dialOptions(target string) []grpc.DialOption {
	if c.tls == nil && c.token != nil && !loopback(target) {
		c.tlsConfig()
	}
	opts := []grpc.DialOption{
		// gRPC's own reconnect backoff grows to two minutes; a watch through
		// an execd restart wants to notice execd is back within seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if c.tls != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(c.tls)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if c.token != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{src: c.token, overTLS: c.tls != nil}))
	}
	if c.userAgent != "" {
		opts = append(opts, grpc.WithUserAgent(c.userAgent))
	}
	return append(opts, c.dialOpts...)
}

// loopback reports a target on this machine: localhost or a loopback IP,
// with or without a port or a dns:/// scheme.
func loopback(target string) bool {
	host := strings.TrimPrefix(target, "dns:///")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

type bearer struct {
	src     TokenSource
	overTLS bool
}

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	// UNAUTHENTICATED, not gRPC's default UNAVAILABLE: a retry would not help.
	tok, err := b.src(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "token source: %v", err)
	}
	if tok == "" {
		return nil, status.Error(codes.Unauthenticated, "the token source returned an empty token")
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.overTLS }
