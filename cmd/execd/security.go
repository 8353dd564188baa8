package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/tauro-exec/tauro-exec/internal/service"
)

// securityFlags are the flags of `execd serve` that decide who may call.
type securityFlags struct {
	tokens     string
	tlsCert    string
	tlsKey     string
	clientCA   string
	insecure   bool
	reflection bool
	reflectSet bool // --reflection was given
}

func (s *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.tokens, "tokens", "", "file of hashed bearer tokens with roles (JSON lines; 'execd token' makes one); every call but health then needs a token")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "serve over TLS with this certificate (PEM); needs --tls-key")
	fs.StringVar(&s.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&s.clientCA, "client-ca", "", "mutual TLS: require client certificates signed by this CA (PEM); without --tokens, such a client is admin")
	fs.BoolVar(&s.insecure, "insecure", false, "serve a listener other machines can reach without authentication, or tokens without TLS")
	// false here only so that -h does not print a default of its own.
	fs.BoolVar(&s.reflection, "reflection", false, "serve gRPC reflection (default: on when open, off with --tokens or --client-ca)")
}

// security is what the flags decided: the service's options, the tokens
// (nil without --tokens) and the listener's TLS (nil for cleartext).
type security struct {
	opts   []service.Option
	tokens *service.Tokens
	tls    *tls.Config
}

// decide checks the flags against the listener and returns what they
// decide; log says at start what it decided.
func (s *securityFlags) decide(lis net.Listener, fs *flag.FlagSet, log *slog.Logger) (security, error) {
	fs.Visit(func(f *flag.Flag) { s.reflectSet = s.reflectSet || f.Name == "reflection" })
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return security{}, errors.New("--tls-cert and --tls-key go together")
	}
	if s.clientCA != "" && s.tlsCert == "" {
		return security{}, errors.New("--client-ca needs --tls-cert and --tls-key: client certificates are checked in the TLS handshake")
	}
	var opts []service.Option
	var tokens *service.Tokens
	var tlsCfg *tls.Config
	if s.tlsCert != "" {
		var err error
		if tlsCfg, err = s.serverTLS(); err != nil {
			return security{}, err
		}
	}
	if s.tokens != "" {
		t, err := service.LoadTokens(s.tokens)
		if err != nil {
			return security{}, fmt.Errorf("--tokens: %w", err)
		}
		tokens = t
		opts = append(opts, service.WithTokens(t))
	}
	if s.clientCA != "" {
		opts = append(opts, service.WithClientCertificates())
	}
	authenticated := s.tokens != "" || s.clientCA != ""
	local := loopback(lis.Addr())
	switch {
	case !authenticated && !local && !s.insecure:
		return security{}, fmt.Errorf("--listen %s can be reached from other machines and execd has no authentication; "+
			"give --tokens (with --tls-cert and --tls-key), or --insecure to serve it open anyway", lis.Addr())
	case s.tokens != "" && s.tlsCert == "" && !local && !s.insecure:
		return security{}, fmt.Errorf("--listen %s can be reached from other machines, and tokens without TLS cross the network in the clear; "+
			"give --tls-cert and --tls-key, or --insecure if a proxy terminates TLS", lis.Addr())
	}
	reflection := !authenticated
	if s.reflectSet {
		reflection = s.reflection
	}
	opts = append(opts, service.WithReflection(reflection))

	attrs := []any{"listen", lis.Addr().String(), "tls", s.tlsCert != "", "mutual_tls", s.clientCA != "", "reflection", reflection}
	switch {
	case s.tokens != "":
		log.Info("execd requires bearer tokens", append(attrs, "tokens", tokens.Len(), "file", s.tokens)...)
	case s.clientCA != "":
		log.Info("execd requires client certificates; each client the CA signed is admin", attrs...)
	default:
		log.Warn("execd is open: every client that reaches it may run, cancel and repair pipelines; give --tokens to require tokens", attrs...)
	}
	return security{opts: opts, tokens: tokens, tls: tlsCfg}, nil
}

// serverTLS is the listener's TLS: the server certificate, and with
// --client-ca the client certificates it requires.
func (s *securityFlags) serverTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.clientCA != "" {
		pool, err := certPool(s.clientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func certPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// loopback reports an address only this machine can reach.
func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
