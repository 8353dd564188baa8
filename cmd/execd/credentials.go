package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tauro-exec/tauro-exec/internal/service"
)

// tokenEnv holds the client commands' bearer token when --token is not
// given; the Python client reads it too.
const tokenEnv = "TAURO_EXEC_TOKEN"

// connFlags are how a client command reaches the daemon: a bearer token
// and TLS. A token goes over TLS unless the daemon is on this machine.
type connFlags struct {
	token   string
	tls     bool
	tlsCA   string
	tlsCert string
	tlsKey  string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.token, "token", "", "bearer token (default $"+tokenEnv+")")
	fs.BoolVar(&c.tls, "tls", false, "use TLS, trusting the system's roots (implied by --tls-ca, and by a token to another machine)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "use TLS, trusting this CA (PEM)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "client certificate (PEM) for mutual TLS; needs --tls-key")
	fs.StringVar(&c.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
}

func (c *connFlags) dialOptions(addr string) ([]grpc.DialOption, error) {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if c.token == "" {
		c.token = os.Getenv(tokenEnv) // not the flag's default: -h would print it
	}
	local := loopbackHost(addr)
	useTLS := c.tls || c.tlsCA != "" || c.tlsCert != "" || (c.token != "" && !local)
	if !useTLS {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if c.token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: c.token}))
		}
		return opts, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pool, err := certPool(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if c.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: c.token, overTLS: true}))
	}
	return opts, nil
}

// loopbackHost reports an address on this machine: localhost or a
// loopback IP.
func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type bearer struct {
	token   string
	overTLS bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.overTLS }

// cmdToken prints a new random token and its line for a tokens file, or
// appends the line to the file and prints only the token.
func cmdToken(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: execd token --name NAME [--role viewer|operator|admin] [--project-role PROJECT=ROLE]... [--append FILE]")
		fmt.Fprintln(fs.Output(), "Give --role, at least one --project-role, or both.")
		fs.PrintDefaults()
	}
	name := fs.String("name", "", "who holds the token; logs name the caller by it")
	roleName := fs.String("role", "", "viewer (read), operator (also run, cancel, stop, repair) or admin (everything); with --project-role, the role in every project not named")
	projects := map[string]service.Role{}
	fs.Func("project-role", "PROJECT=ROLE, the role in one project; repeat it for others. Without --role the token reaches only the projects named", func(v string) error {
		project, roleName, ok := strings.Cut(v, "=")
		if !ok {
			return errors.New("want PROJECT=ROLE, such as sales=operator")
		}
		if _, dup := projects[project]; dup {
			return fmt.Errorf("project %q is given twice", project)
		}
		r, err := service.ParseRole(roleName)
		if err != nil {
			return fmt.Errorf("project %q: %w", project, err)
		}
		projects[project] = r
		return nil
	})
	appendTo := fs.String("append", "", "append the token's line to this tokens file (created with mode 0600) and print only the token")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if *name == "" || (*roleName == "" && len(projects) == 0) || fs.NArg() > 0 {
		fs.Usage()
		return exitError{2}
	}
	role := service.RoleNone // only the projects named
	if *roleName != "" {
		r, err := service.ParseRole(*roleName)
		if err != nil {
			return fmt.Errorf("--role: %w", err)
		}
		role = r
	}
	token, line, err := service.NewToken(*name, role, projects)
	if err != nil {
		return err
	}
	if *appendTo == "" {
		fmt.Printf("# token for %s (%s); execd keeps only its hash, so store it now:\n%s\n", *name, tokenRoles(role, projects), token)
		fmt.Printf("# its line for the tokens file (--tokens):\n%s\n", line)
		return nil
	}
	f, err := os.OpenFile(*appendTo, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("--append: %w", err)
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return fmt.Errorf("--append: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--append: %w", err)
	}
	fmt.Println(token)
	return nil
}

// tokenRoles says what a token may do where, for the line above it.
func tokenRoles(role service.Role, projects map[string]service.Role) string {
	var in []string
	for _, p := range slices.Sorted(maps.Keys(projects)) {
		in = append(in, fmt.Sprintf("%s in %s", projects[p], p))
	}
	switch {
	case len(in) == 0:
		return role.String()
	case role == service.RoleNone:
		return strings.Join(in, ", ") + "; no other project"
	}
	return strings.Join(in, ", ") + "; " + role.String() + " elsewhere"
}
